//! Server-rendered SVG charts: the pairwise win-rate heatmap and the two-metric
//! scatter with its Pareto front.
//!
//! Each builder returns a complete `<svg>` element with a `viewBox` (it scales
//! to its container), every piece of user text passed through [`escape`], and
//! nothing that needs colour to be read: heatmap cells print their value and a
//! significance mark, scatter points differ in shape and fill as well as colour.
//! Templates insert the result with `|safe`; everything else they print is
//! escaped by askama.

use std::fmt::Write;

use crate::format::{escape, fixed, number};

/// One cell of the heatmap: how often the row's system beat the column's.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatCell {
    /// (wins + ties/2) / n, from the row system's point of view.
    pub win_rate: f64,
    /// 95% interval of the win rate.
    pub ci: Option<[f64; 2]>,
    /// Items the row system won.
    pub wins: u64,
    /// Items it lost.
    pub losses: u64,
    /// Ties.
    pub ties: u64,
}

impl HeatCell {
    /// The same pair seen from the other system.
    pub fn flipped(&self) -> HeatCell {
        HeatCell {
            win_rate: 1.0 - self.win_rate,
            ci: self.ci.map(|[lo, hi]| [1.0 - hi, 1.0 - lo]),
            wins: self.losses,
            losses: self.wins,
            ties: self.ties,
        }
    }

    /// `▲` when the whole interval is above one half, `▼` when below, else nothing.
    pub fn mark(&self) -> &'static str {
        match self.ci {
            Some([lo, _]) if lo > 0.5 => "▲",
            Some([_, hi]) if hi < 0.5 => "▼",
            _ => "",
        }
    }
}

/// An N×N matrix of win rates: `cells[row][col]` is row's rate against col.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Heatmap {
    /// System names, in row (and column) order.
    pub systems: Vec<String>,
    /// `None` on the diagonal and for pairs the comparison did not cover.
    pub cells: Vec<Vec<Option<HeatCell>>>,
}

const CELL: f64 = 64.0;

/// The fill for a win rate: blue below one half, white at it, orange above.
pub fn heat_colour(rate: f64) -> String {
    let t = rate.clamp(0.0, 1.0);
    let (from, to, s) = if t < 0.5 {
        ((33.0, 102.0, 172.0), (247.0, 247.0, 247.0), t / 0.5)
    } else {
        ((247.0, 247.0, 247.0), (214.0, 96.0, 77.0), (t - 0.5) / 0.5)
    };
    let mix = |a: f64, b: f64| (a + (b - a) * s).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(from.0, to.0),
        mix(from.1, to.1),
        mix(from.2, to.2)
    )
}

/// A rate in [0, 1] with two decimals and no leading zero (`.41`, `1.00`).
fn bare(rate: f64) -> String {
    let text = fixed(rate, 2);
    match text.strip_prefix("0.") {
        Some(rest) => format!(".{rest}"),
        None => text,
    }
}

/// Shortens a label for an axis; the full text stays in the `<title>`.
fn short(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// The heatmap as SVG. Each cell is a `<g class="cell">` carrying
/// `data-row`, `data-col` and `data-value` (the unrounded win rate), a
/// `<title>` with the interval and counts (shown on hover), and the rounded
/// value with its significance mark as text.
pub fn heatmap_svg(map: &Heatmap) -> String {
    let n = map.systems.len();
    let longest = map
        .systems
        .iter()
        .map(|s| s.chars().count().min(22))
        .max()
        .unwrap_or(4) as f64;
    let left = 12.0 + longest * 7.2;
    let top = 12.0 + longest * 5.4;
    // The last column's label, rotated, reaches past the grid on the right.
    let width = left + n as f64 * CELL + (longest * 5.6 - CELL / 2.0).max(8.0);
    let height = top + n as f64 * CELL + 8.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="heatmap" viewBox="0 0 {w} {h}" style="max-width: {max}px; min-width: {min}px" role="img" aria-labelledby="heatmap-title" xmlns="http://www.w3.org/2000/svg"><title id="heatmap-title">Pairwise win rates: row system against column system</title><style>.heatmap .cell text {{ text-anchor: middle; dominant-baseline: middle; }}</style>"#,
        w = fixed(width, 0),
        h = fixed(height, 0),
        // Up to 1.4 times its natural size: readable, never wider than the page.
        max = fixed(width * 1.4, 0),
        // Never below its natural size: on a phone the matrix scrolls sideways
        // rather than shrinking its numbers (11 px at the smallest) below legibility.
        min = fixed(width, 0),
    );
    for (i, name) in map.systems.iter().enumerate() {
        let y = top + (i as f64 + 0.5) * CELL;
        let _ = write!(
            svg,
            r#"<text class="row-label" x="{x}" y="{y}" text-anchor="end" dominant-baseline="middle"><title>{full}</title>{text}</text>"#,
            x = fixed(left - 6.0, 1),
            y = fixed(y, 1),
            full = escape(name),
            text = escape(&short(name, 22)),
        );
        let x = left + (i as f64 + 0.5) * CELL;
        let _ = write!(
            svg,
            r#"<text class="col-label" transform="translate({x} {y}) rotate(-40)" text-anchor="start"><title>{full}</title>{text}</text>"#,
            x = fixed(x, 1),
            y = fixed(top - 6.0, 1),
            full = escape(name),
            text = escape(&short(name, 22)),
        );
    }
    for (i, row) in map.cells.iter().enumerate() {
        for (j, cell) in row.iter().enumerate() {
            let x = left + j as f64 * CELL;
            let y = top + i as f64 * CELL;
            let (a, b) = (&map.systems[i], &map.systems[j]);
            match cell {
                Some(cell) => {
                    let ci = cell
                        .ci
                        .map(|[lo, hi]| format!("95% CI {}–{}", fixed(lo, 3), fixed(hi, 3)))
                        .unwrap_or_else(|| "no interval".into());
                    let ink = if (cell.win_rate - 0.5).abs() > 0.3 {
                        "#fff"
                    } else {
                        "#111"
                    };
                    // The interval printed in the cell, not only on hover
                    // (touch screens have none), without leading zeros to fit.
                    let interval = cell
                        .ci
                        .map(|[lo, hi]| format!("{}–{}", bare(lo), bare(hi)))
                        .unwrap_or_default();
                    let _ = write!(
                        svg,
                        r#"<g class="cell" data-row="{ea}" data-col="{eb}" data-value="{v}"><title>{ea} vs {eb}: win rate {r} ({ci}); {w} wins, {l} losses, {t} ties</title><rect x="{x}" y="{y}" width="{c}" height="{c}" fill="{fill}"/><text x="{tx}" y="{ty}" fill="{ink}">{r}{mark}</text><text class="ci" x="{tx}" y="{cy}" fill="{ink}">{interval}</text></g>"#,
                        ea = escape(a),
                        eb = escape(b),
                        v = cell.win_rate,
                        r = fixed(cell.win_rate, 2),
                        w = cell.wins,
                        l = cell.losses,
                        t = cell.ties,
                        x = fixed(x, 1),
                        y = fixed(y, 1),
                        c = fixed(CELL - 2.0, 1),
                        fill = heat_colour(cell.win_rate),
                        tx = fixed(x + CELL / 2.0 - 1.0, 1),
                        ty = fixed(y + CELL / 2.0 - 9.0, 1),
                        cy = fixed(y + CELL / 2.0 + 12.0, 1),
                        mark = cell.mark(),
                    );
                }
                None => {
                    let text = if i == j { "—" } else { "n/a" };
                    let _ = write!(
                        svg,
                        r##"<g class="cell empty"><title>{ea} vs {eb}: {what}</title><rect x="{x}" y="{y}" width="{c}" height="{c}" fill="url(#hatch)"/><text x="{tx}" y="{ty}" fill="#555">{text}</text></g>"##,
                        ea = escape(a),
                        eb = escape(b),
                        what = if i == j {
                            "same system"
                        } else {
                            "not compared"
                        },
                        x = fixed(x, 1),
                        y = fixed(y, 1),
                        c = fixed(CELL - 2.0, 1),
                        tx = fixed(x + CELL / 2.0 - 1.0, 1),
                        ty = fixed(y + CELL / 2.0 - 1.0, 1),
                    );
                }
            }
        }
    }
    svg.push_str(r##"<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#eee"/><line x1="0" y1="0" x2="0" y2="6" stroke="#ccc" stroke-width="2"/></pattern></defs></svg>"##);
    svg
}

/// One system on the scatter.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterPoint {
    /// The system's name.
    pub label: String,
    /// Value on the horizontal axis.
    pub x: f64,
    /// Value on the vertical axis.
    pub y: f64,
    /// Whether no other point dominates it (drawn solid, joined by the front line).
    pub on_front: bool,
    /// The sweep it belongs to, an index into [`Scatter::sweeps`]: its marker
    /// shape and colour, and the line joining the sweep.
    pub sweep: Option<usize>,
    /// The mixing weight within its sweep: the order of the sweep's line.
    pub lambda: Option<f64>,
    /// More to say on hover after its sweep and λ (the trainer's weights, ...).
    pub notes: Vec<String>,
    /// Where clicking the point leads.
    pub href: Option<String>,
    /// The 95% interval of the x value, drawn as a horizontal bar.
    pub x_ci: Option<[f64; 2]>,
    /// The 95% interval of the y value, drawn as a vertical bar.
    pub y_ci: Option<[f64; 2]>,
}

/// A two-metric scatter.
#[derive(Debug, Clone, PartialEq)]
pub struct Scatter {
    /// The horizontal metric's name.
    pub x_label: String,
    /// The vertical metric's name.
    pub y_label: String,
    /// Whether larger x is better (the arrow on the axis says so).
    pub x_higher_is_better: bool,
    /// Whether larger y is better.
    pub y_higher_is_better: bool,
    /// The systems.
    pub points: Vec<ScatterPoint>,
    /// The sweeps' labels, as the legend and the hover text name them; a
    /// sweep's index picks its style ([`sweep_style`]).
    pub sweeps: Vec<String>,
}

/// A marker's outline. Points in no sweep keep the plain diamond (on the
/// front) and circle (dominated); sweeps take the others, so a shape alone
/// says which sweep a point is in, whatever the colours look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A point in no sweep, on the front.
    Diamond,
    /// A point in no sweep, dominated.
    Circle,
    /// The first sweep's.
    Square,
    /// The second's.
    Triangle,
    /// The third's.
    InvertedTriangle,
    /// The fourth's.
    Plus,
    /// The fifth's.
    Star,
    /// The sixth's.
    Pentagon,
}

impl Shape {
    /// Its name, in the SVG's `data-marker`.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Diamond => "diamond",
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::InvertedTriangle => "inverted-triangle",
            Shape::Plus => "plus",
            Shape::Star => "star",
            Shape::Pentagon => "pentagon",
        }
    }

    /// The outline centred on (`cx`, `cy`), about 14 units across.
    fn path(self, cx: f64, cy: f64) -> String {
        let vertices: Vec<(f64, f64)> = match self {
            Shape::Circle => {
                return format!(
                    "M{} {}a5.5 5.5 0 1 0 11 0a5.5 5.5 0 1 0 -11 0z",
                    fixed(cx - 5.5, 1),
                    fixed(cy, 1)
                );
            }
            Shape::Diamond => vec![(0.0, -7.0), (7.0, 0.0), (0.0, 7.0), (-7.0, 0.0)],
            Shape::Square => vec![(-5.5, -5.5), (5.5, -5.5), (5.5, 5.5), (-5.5, 5.5)],
            Shape::Triangle => vec![(0.0, -7.5), (6.8, 5.0), (-6.8, 5.0)],
            Shape::InvertedTriangle => vec![(0.0, 7.5), (6.8, -5.0), (-6.8, -5.0)],
            Shape::Plus => vec![
                (-2.5, -7.0),
                (2.5, -7.0),
                (2.5, -2.5),
                (7.0, -2.5),
                (7.0, 2.5),
                (2.5, 2.5),
                (2.5, 7.0),
                (-2.5, 7.0),
                (-2.5, 2.5),
                (-7.0, 2.5),
                (-7.0, -2.5),
                (-2.5, -2.5),
            ],
            Shape::Star => (0..10)
                .map(|k| {
                    let r = if k % 2 == 0 { 8.0 } else { 3.6 };
                    let a = std::f64::consts::PI * (f64::from(k) / 5.0 - 0.5);
                    (r * a.cos(), r * a.sin())
                })
                .collect(),
            Shape::Pentagon => (0..5)
                .map(|k| {
                    let a = std::f64::consts::PI * (f64::from(k) * 0.4 - 0.5);
                    (7.0 * a.cos(), 7.0 * a.sin())
                })
                .collect(),
        };
        let mut d = String::new();
        for (k, (x, y)) in vertices.iter().enumerate() {
            let _ = write!(
                d,
                "{}{} {}",
                if k == 0 { "M" } else { "L" },
                fixed(cx + x, 1),
                fixed(cy + y, 1)
            );
        }
        d.push('z');
        d
    }
}

/// How a sweep is drawn: its marker, its colour, and its line's dashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepStyle {
    /// The marker of its points.
    pub shape: Shape,
    /// Marker fill (on the front) or outline (dominated), and the line.
    pub colour: &'static str,
    /// The line's `stroke-dasharray`.
    pub dashes: &'static str,
}

const SWEEP_SHAPES: [Shape; 6] = [
    Shape::Square,
    Shape::Triangle,
    Shape::InvertedTriangle,
    Shape::Plus,
    Shape::Star,
    Shape::Pentagon,
];
/// Okabe and Ito's colour-blind-safe colours without their orange and yellow
/// (the front's band is orange), and two darker ones: seven, so that with six
/// shapes no two of the first 42 sweeps look alike.
const SWEEP_COLOURS: [&str; 7] = [
    "#0072b2", "#009e73", "#cc79a7", "#2d004b", "#d55e00", "#56b4e9", "#555555",
];
const SWEEP_DASHES: [&str; 4] = ["7 4", "2 3", "10 3 2 3", "4 4"];

/// The style of the `index`-th sweep.
pub fn sweep_style(index: usize) -> SweepStyle {
    SweepStyle {
        shape: SWEEP_SHAPES[index % SWEEP_SHAPES.len()],
        colour: SWEEP_COLOURS[index % SWEEP_COLOURS.len()],
        dashes: SWEEP_DASHES[index % SWEEP_DASHES.len()],
    }
}

/// A marker's `<path>`: filled for a point on the front, hollow otherwise.
fn marker(shape: Shape, colour: &str, on_front: bool, cx: f64, cy: f64) -> String {
    let d = shape.path(cx, cy);
    if on_front {
        format!(r##"<path d="{d}" fill="{colour}" stroke="#fff"/>"##)
    } else {
        format!(r##"<path d="{d}" fill="#fff" stroke="{colour}" stroke-width="2"/>"##)
    }
}

/// The `index`-th sweep's marker alone, for a table beside the chart.
pub fn sweep_marker_svg(index: usize) -> String {
    let style = sweep_style(index);
    format!(
        r#"<svg class="marker" data-marker="{name}" width="18" height="18" viewBox="-9 -9 18 18" aria-hidden="true" xmlns="http://www.w3.org/2000/svg">{path}</svg>"#,
        name = style.shape.name(),
        path = marker(style.shape, style.colour, true, 0.0, 0.0),
    )
}

const W: f64 = 640.0;
const H: f64 = 440.0;
const PAD_L: f64 = 64.0;
const PAD_R: f64 = 64.0;
const PAD_T: f64 = 20.0;
const PAD_B: f64 = 56.0;

/// Round tick positions covering `[lo, hi]`.
pub fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return vec![lo];
    }
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * magnitude);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// The plotting range of `values`, padded by 8% (or ±0.5 around a single value).
fn range(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.08 } else { 0.5 };
    (lo - pad, hi + pad)
}

/// The values an axis must show: every point and both ends of its interval.
fn extent(
    points: &[ScatterPoint],
    value: fn(&ScatterPoint) -> (f64, Option<[f64; 2]>),
) -> (f64, f64) {
    let values: Vec<f64> = points
        .iter()
        .flat_map(|p| {
            let (v, ci) = value(p);
            std::iter::once(v).chain(ci.into_iter().flatten())
        })
        .filter(|v| v.is_finite())
        .collect();
    range(values.into_iter())
}

fn x_extent(scatter: &Scatter) -> (f64, f64) {
    extent(&scatter.points, |p| (p.x, p.x_ci))
}

fn y_extent(scatter: &Scatter) -> (f64, f64) {
    extent(&scatter.points, |p| (p.y, p.y_ci))
}

/// Pixel coordinates of every point, in the same order as `scatter.points`.
pub fn scatter_positions(scatter: &Scatter) -> Vec<(f64, f64)> {
    let (x0, x1) = x_extent(scatter);
    let (y0, y1) = y_extent(scatter);
    scatter
        .points
        .iter()
        .map(|p| (x_pixel(p.x, x0, x1), y_pixel(p.y, y0, y1)))
        .collect()
}

fn x_pixel(x: f64, x0: f64, x1: f64) -> f64 {
    PAD_L + (x - x0) / (x1 - x0) * (W - PAD_L - PAD_R)
}

fn y_pixel(y: f64, y0: f64, y1: f64) -> f64 {
    H - PAD_B - (y - y0) / (y1 - y0) * (H - PAD_T - PAD_B)
}

fn polyline(points: &[(f64, f64)]) -> String {
    points
        .iter()
        .map(|(x, y)| format!("{},{}", fixed(*x, 1), fixed(*y, 1)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The scatter as SVG: axes with ticks and "better" arrows, the front as a
/// solid line (`class="front-line"`) through exactly the points marked
/// `on_front` in x order, each sweep as a dashed line (`class="sweep-line"`,
/// `data-sweep`) in λ order in its colour and dash pattern, each labelled and
/// linked point as its sweep's marker ([`sweep_style`]; a diamond or circle in
/// no sweep), filled on the front and hollow when dominated, its `<title>`
/// naming its values, status, sweep, λ and notes; and, when there are sweeps,
/// a legend (`class="scatter-legend"`) under the plot naming each with its marker.
pub fn scatter_svg(scatter: &Scatter) -> String {
    let positions = scatter_positions(scatter);
    let (x0, x1) = x_extent(scatter);
    let (y0, y1) = y_extent(scatter);
    let legend = legend_entries(scatter);
    let legend_rows = legend_layout(&legend);
    let height = H + legend_rows.last().map_or(0.0, |(_, y)| y + LEGEND_ROW - H);
    let mut svg = String::new();
    // At least 7/8 of its natural size, so that its smallest text (14 units)
    // stays above 12 px; narrower screens scroll the chart sideways.
    let _ = write!(
        svg,
        r#"<svg class="scatter" viewBox="0 0 {W} {h}" style="min-width: {min}px" role="img" aria-labelledby="scatter-title" xmlns="http://www.w3.org/2000/svg"><title id="scatter-title">{y} against {x}</title>"#,
        x = escape(&scatter.x_label),
        y = escape(&scatter.y_label),
        h = fixed(height, 0),
        min = fixed(W * 0.875, 0),
    );
    // Axes and grid.
    let _ = write!(
        svg,
        r##"<g class="axes" stroke="#888"><line x1="{PAD_L}" y1="{yb}" x2="{xr}" y2="{yb}"/><line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{yb}"/></g>"##,
        yb = H - PAD_B,
        xr = W - PAD_R,
    );
    for t in ticks(x0, x1) {
        let px = PAD_L + (t - x0) / (x1 - x0) * (W - PAD_L - PAD_R);
        let _ = write!(
            svg,
            r##"<line class="grid" x1="{px}" y1="{PAD_T}" x2="{px}" y2="{yb}" stroke="#e4e4e4"/><text class="tick" x="{px}" y="{ty}" text-anchor="middle">{label}</text>"##,
            px = fixed(px, 1),
            yb = H - PAD_B,
            ty = H - PAD_B + 16.0,
            label = tick_label(t),
        );
    }
    for t in ticks(y0, y1) {
        let py = H - PAD_B - (t - y0) / (y1 - y0) * (H - PAD_T - PAD_B);
        let _ = write!(
            svg,
            r##"<line class="grid" x1="{PAD_L}" y1="{py}" x2="{xr}" y2="{py}" stroke="#e4e4e4"/><text class="tick" x="{tx}" y="{py}" text-anchor="end" dominant-baseline="middle">{label}</text>"##,
            py = fixed(py, 1),
            xr = W - PAD_R,
            tx = PAD_L - 6.0,
            label = tick_label(t),
        );
    }
    let arrow = |higher: bool, horizontal: bool| match (higher, horizontal) {
        (true, true) => "better →",
        (false, true) => "← better",
        (true, false) => "better ↑",
        (false, false) => "better ↓",
    };
    let _ = write!(
        svg,
        r#"<text class="axis-label" x="{cx}" y="{by}" text-anchor="middle">{x} ({xa})</text><text class="axis-label" transform="translate(16 {cy}) rotate(-90)" text-anchor="middle">{y} ({ya})</text>"#,
        cx = fixed((PAD_L + W - PAD_R) / 2.0, 1),
        by = H - 14.0,
        cy = fixed((PAD_T + H - PAD_B) / 2.0, 1),
        x = escape(&scatter.x_label),
        y = escape(&scatter.y_label),
        xa = arrow(scatter.x_higher_is_better, true),
        ya = arrow(scatter.y_higher_is_better, false),
    );
    // The front (solid), in x order.
    let mut front: Vec<(f64, f64)> = scatter
        .points
        .iter()
        .zip(&positions)
        .filter(|(p, _)| p.on_front)
        .map(|(_, pos)| *pos)
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    if !front.is_empty() {
        // A wide translucent band: the sweep's thin dashed line stays legible
        // on top of it where the two coincide (a sweep often is the front).
        let _ = write!(
            svg,
            r##"<polyline class="front-line" points="{}" fill="none" stroke="#e08214" stroke-opacity="0.45" stroke-width="9" stroke-linejoin="round" stroke-linecap="round"><title>Pareto front</title></polyline>"##,
            polyline(&front)
        );
    }
    // Each mean's 95% interval on each axis, under the points.
    for (p, (px, py)) in scatter.points.iter().zip(&positions) {
        if let Some([lo, hi]) = p.x_ci.filter(|ci| ci.iter().all(|v| v.is_finite())) {
            let (a, b) = (x_pixel(lo, x0, x1), x_pixel(hi, x0, x1));
            let _ = write!(
                svg,
                r##"<path class="errbar" d="M{a} {py}H{b}M{a} {t}V{u}M{b} {t}V{u}" stroke="#444" stroke-width="1.2" fill="none"/>"##,
                a = fixed(a, 1),
                b = fixed(b, 1),
                py = fixed(*py, 1),
                t = fixed(py - 4.0, 1),
                u = fixed(py + 4.0, 1),
            );
        }
        if let Some([lo, hi]) = p.y_ci.filter(|ci| ci.iter().all(|v| v.is_finite())) {
            let (a, b) = (y_pixel(lo, y0, y1), y_pixel(hi, y0, y1));
            let _ = write!(
                svg,
                r##"<path class="errbar" d="M{px} {a}V{b}M{l} {a}H{r}M{l} {b}H{r}" stroke="#444" stroke-width="1.2" fill="none"/>"##,
                a = fixed(a, 1),
                b = fixed(b, 1),
                px = fixed(*px, 1),
                l = fixed(px - 4.0, 1),
                r = fixed(px + 4.0, 1),
            );
        }
    }
    // Each sweep: a thin dashed line in its colour over the front's band,
    // through its points with a λ, in λ order.
    for (index, label) in scatter.sweeps.iter().enumerate() {
        let mut sweep: Vec<(f64, (f64, f64))> = scatter
            .points
            .iter()
            .zip(&positions)
            .filter(|(p, _)| p.sweep == Some(index))
            .filter_map(|(p, pos)| p.lambda.map(|l| (l, *pos)))
            .collect();
        if sweep.len() < 2 {
            continue;
        }
        sweep.sort_by(|a, b| a.0.total_cmp(&b.0));
        let line: Vec<(f64, f64)> = sweep.iter().map(|(_, pos)| *pos).collect();
        let style = sweep_style(index);
        let _ = write!(
            svg,
            r##"<polyline class="sweep-line" data-sweep="{s}" points="{points}" fill="none" stroke="{colour}" stroke-width="1.6" stroke-dasharray="{dashes}"><title>{s}, in λ order</title></polyline>"##,
            s = escape(label),
            points = polyline(&line),
            colour = style.colour,
            dashes = style.dashes,
        );
    }
    for (p, (px, py)) in scatter.points.iter().zip(&positions) {
        let class = if p.on_front {
            "point front"
        } else {
            "point dominated"
        };
        let (shape, colour) = match p.sweep.filter(|&i| i < scatter.sweeps.len()) {
            Some(i) => (sweep_style(i).shape, sweep_style(i).colour),
            None if p.on_front => (Shape::Diamond, "#b35806"),
            None => (Shape::Circle, "#555"),
        };
        let shape_svg = marker(shape, colour, p.on_front, *px, *py);
        let status = if p.on_front {
            "on the front"
        } else {
            "dominated"
        };
        let mut about = vec![status.to_string()];
        if let Some(label) = p.sweep.and_then(|i| scatter.sweeps.get(i)) {
            about.push(label.clone());
        }
        if let Some(l) = p.lambda {
            about.push(format!("λ = {}", tick_label(l)));
        }
        about.extend(p.notes.iter().cloned());
        let title = format!(
            "{}: {} = {}, {} = {} ({})",
            p.label,
            scatter.x_label,
            number(p.x),
            scatter.y_label,
            number(p.y),
            about.join(", ")
        );
        let label = format!(
            r#"<text class="point-label" x="{}" y="{}">{}</text>"#,
            fixed(px + 9.0, 1),
            fixed(py - 8.0, 1),
            escape(&short(&p.label, 24))
        );
        let body = format!("<title>{}</title>{shape_svg}{label}", escape(&title));
        let sweep = p
            .sweep
            .and_then(|i| scatter.sweeps.get(i))
            .map(|s| format!(r#" data-sweep="{}""#, escape(s)))
            .unwrap_or_default();
        let attributes = format!(
            r#"class="{class}" data-system="{s}" data-marker="{m}"{sweep}"#,
            s = escape(&p.label),
            m = shape.name(),
        );
        match &p.href {
            Some(href) => {
                let _ = write!(
                    svg,
                    r#"<a {attributes} href="{h}">{body}</a>"#,
                    h = escape(href)
                );
            }
            None => {
                let _ = write!(svg, r#"<g {attributes}>{body}</g>"#);
            }
        }
    }
    // The legend, under the x axis's label.
    if !legend_rows.is_empty() {
        svg.push_str(r#"<g class="scatter-legend">"#);
        for (entry, (x, y)) in legend.iter().zip(&legend_rows) {
            let cy = y + LEGEND_ROW / 2.0;
            let line = entry
                .dashes
                .map(|dashes| {
                    format!(
                        r#"<line x1="{a}" y1="{cy}" x2="{b}" y2="{cy}" stroke="{c}" stroke-width="1.6" stroke-dasharray="{dashes}"/>"#,
                        a = fixed(x - 2.0, 1),
                        b = fixed(x + 26.0, 1),
                        cy = fixed(cy, 1),
                        c = entry.colour,
                    )
                })
                .unwrap_or_default();
            let sweep = entry
                .sweep
                .map(|s| format!(r#" data-sweep="{}""#, escape(s)))
                .unwrap_or_default();
            let _ = write!(
                svg,
                r#"<g class="legend-entry" data-marker="{m}"{sweep}>{line}{shape}<text x="{tx}" y="{ty}" dominant-baseline="middle">{text}</text></g>"#,
                m = entry.shape.name(),
                shape = marker(entry.shape, entry.colour, entry.filled, x + 12.0, cy),
                tx = fixed(x + LEGEND_MARK, 1),
                ty = fixed(cy, 1),
                text = escape(&entry.text),
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

/// One line of the scatter's legend.
struct LegendEntry<'a> {
    shape: Shape,
    colour: &'static str,
    filled: bool,
    /// The sweep's line, drawn through the marker.
    dashes: Option<&'static str>,
    /// The sweep it names, for `data-sweep`.
    sweep: Option<&'a str>,
    text: String,
}

const LEGEND_ROW: f64 = 24.0;
/// From an entry's left edge to its text.
const LEGEND_MARK: f64 = 34.0;

/// A legend when the chart has sweeps: each sweep's marker, line and label
/// with its number of points, then the plain marker of points in no sweep.
fn legend_entries(scatter: &Scatter) -> Vec<LegendEntry<'_>> {
    let mut entries: Vec<LegendEntry<'_>> = scatter
        .sweeps
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let style = sweep_style(i);
            let n = scatter.points.iter().filter(|p| p.sweep == Some(i)).count();
            LegendEntry {
                shape: style.shape,
                colour: style.colour,
                filled: true,
                dashes: Some(style.dashes),
                sweep: Some(label),
                text: format!("{label} ({n})"),
            }
        })
        .collect();
    if !entries.is_empty() && scatter.points.iter().any(|p| p.sweep.is_none()) {
        entries.push(LegendEntry {
            shape: Shape::Circle,
            colour: "#555",
            filled: false,
            dashes: None,
            sweep: None,
            text: "no sweep (◆ when on the front)".into(),
        });
    }
    entries
}

/// Each entry's top-left corner: left to right under the plot, a new row when
/// the next would pass the right margin (text width estimated at 8 units a
/// character of the 14-unit font).
fn legend_layout(entries: &[LegendEntry<'_>]) -> Vec<(f64, f64)> {
    let mut corners = Vec::with_capacity(entries.len());
    let (mut x, mut y) = (PAD_L, H + 2.0);
    for entry in entries {
        let width = LEGEND_MARK + entry.text.chars().count() as f64 * 8.0 + 18.0;
        if x > PAD_L && x + width > W - 8.0 {
            x = PAD_L;
            y += LEGEND_ROW;
        }
        corners.push((x, y));
        x += width;
    }
    corners
}

fn tick_label(t: f64) -> String {
    let s = format!("{t:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(rate: f64, ci: [f64; 2]) -> HeatCell {
        HeatCell {
            win_rate: rate,
            ci: Some(ci),
            wins: 6,
            losses: 3,
            ties: 1,
        }
    }

    #[test]
    fn every_heatmap_cell_prints_its_value_and_carries_it_exactly() {
        let c = cell(0.65, [0.52, 0.78]);
        let map = Heatmap {
            systems: vec!["a".into(), "b".into()],
            cells: vec![vec![None, Some(c.clone())], vec![Some(c.flipped()), None]],
        };
        let svg = heatmap_svg(&map);
        assert!(svg.contains(r#"data-row="a" data-col="b" data-value="0.65""#));
        assert!(svg.contains(r#"data-row="b" data-col="a" data-value="0.35""#));
        assert!(svg.contains(">0.65▲</text>"), "{svg}");
        assert!(svg.contains(">0.35▼</text>"), "{svg}");
        assert!(svg.contains("(95% CI 0.520–0.780); 6 wins, 3 losses, 1 ties"));
        assert!(svg.contains("(95% CI 0.220–0.480); 3 wins, 6 losses, 1 ties"));
        assert_eq!(svg.matches(r#"class="cell empty""#).count(), 2);
    }

    #[test]
    fn colours_run_from_blue_through_white_to_orange() {
        assert_eq!(heat_colour(0.0), "#2166ac");
        assert_eq!(heat_colour(0.5), "#f7f7f7");
        assert_eq!(heat_colour(1.0), "#d6604d");
        assert_eq!(heat_colour(7.0), heat_colour(1.0), "clamped");
        // An undecided cell carries no mark: the text alone says "no difference".
        assert_eq!(cell(0.55, [0.45, 0.65]).mark(), "");
    }

    #[test]
    fn user_text_is_escaped_in_every_chart() {
        let evil = r#"<script>alert("x")</script>&"#;
        let map = Heatmap {
            systems: vec![evil.into(), "b".into()],
            cells: vec![
                vec![None, Some(cell(0.5, [0.4, 0.6]))],
                vec![Some(cell(0.5, [0.4, 0.6])), None],
            ],
        };
        let scatter = Scatter {
            x_label: evil.into(),
            y_label: "y".into(),
            x_higher_is_better: true,
            y_higher_is_better: true,
            points: vec![ScatterPoint {
                label: evil.into(),
                x: 1.0,
                y: 2.0,
                on_front: true,
                sweep: Some(0),
                lambda: None,
                notes: vec![evil.into()],
                href: Some(r#"/x?a="><script>"#.into()),
                x_ci: None,
                y_ci: None,
            }],
            sweeps: vec![evil.into()],
        };
        for svg in [heatmap_svg(&map), scatter_svg(&scatter)] {
            assert!(!svg.contains("<script"), "{svg}");
            assert!(svg.contains("&lt;script&gt;"));
        }
    }

    /// The `points` of the first element of class `class`.
    fn points_of(svg: &str, class: &str) -> Vec<(f64, f64)> {
        let rest = &svg[svg.find(&format!(r#"class="{class}""#)).unwrap()..];
        let rest = &rest[rest.find(r#" points=""#).unwrap() + 9..];
        let list = &rest[..rest.find('"').unwrap()];
        list.split(' ')
            .map(|xy| {
                let (x, y) = xy.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    fn scatter(points: &[(f64, f64, bool, Option<f64>)]) -> Scatter {
        Scatter {
            x_label: "m/x".into(),
            y_label: "m/y".into(),
            x_higher_is_better: true,
            y_higher_is_better: false,
            points: points
                .iter()
                .enumerate()
                .map(|(i, &(x, y, on_front, lambda))| ScatterPoint {
                    label: format!("s{i}"),
                    x,
                    y,
                    on_front,
                    // A λ puts a point in the one sweep.
                    sweep: lambda.map(|_| 0),
                    lambda,
                    notes: Vec::new(),
                    href: None,
                    x_ci: Some([x - 0.1, x + 0.1]),
                    y_ci: None,
                })
                .collect(),
            sweeps: if points.iter().any(|p| p.3.is_some()) {
                vec!["λ sweep".into()]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn intervals_are_drawn_as_bars_and_printed_in_heatmap_cells() {
        let s = scatter(&[(1.0, 1.0, true, None), (2.0, 0.5, true, None)]);
        let svg = scatter_svg(&s);
        assert_eq!(
            svg.matches(r#"class="errbar""#).count(),
            2,
            "one x bar each"
        );
        let map = Heatmap {
            systems: vec!["a".into(), "b".into()],
            cells: vec![
                vec![None, Some(cell(0.7, [0.55, 0.82]))],
                vec![Some(cell(0.3, [0.18, 0.45])), None],
            ],
        };
        let svg = heatmap_svg(&map);
        assert!(svg.contains(">.55–.82</text>"), "{svg}");
        assert!(svg.contains(">.18–.45</text>"), "{svg}");
    }

    #[test]
    fn the_front_line_passes_through_exactly_the_non_dominated_points_in_x_order() {
        let s = scatter(&[
            (3.0, 1.0, true, None),
            (1.0, 0.5, true, None),
            (2.0, 2.0, false, None),
            (0.5, 3.0, false, None),
            (2.0, 0.8, true, None),
        ]);
        let svg = scatter_svg(&s);
        let positions = scatter_positions(&s);
        let rounded =
            |(x, y): (f64, f64)| (fixed(x, 1).parse().unwrap(), fixed(y, 1).parse().unwrap());
        let expected: Vec<(f64, f64)> = [1, 4, 0].iter().map(|&i| rounded(positions[i])).collect();
        assert_eq!(points_of(&svg, "front-line"), expected);
        assert_eq!(svg.matches(r#"class="point front""#).count(), 3);
        assert_eq!(svg.matches(r#"class="point dominated""#).count(), 2);
        assert!(svg.contains("better ↓"), "lower-is-better y axis");
        assert!(!svg.contains("sweep-line"), "no λ, no sweep");
    }

    #[test]
    fn a_sweep_is_joined_in_lambda_order_not_x_order() {
        let s = scatter(&[
            (1.0, 1.0, true, Some(0.5)),
            (2.0, 2.0, false, Some(0.0)),
            (3.0, 0.0, true, Some(1.0)),
            (9.0, 9.0, false, None),
        ]);
        let svg = scatter_svg(&s);
        let p = scatter_positions(&s);
        let rounded =
            |(x, y): (f64, f64)| (fixed(x, 1).parse().unwrap(), fixed(y, 1).parse().unwrap());
        assert_eq!(
            points_of(&svg, "sweep-line"),
            vec![rounded(p[1]), rounded(p[0]), rounded(p[2])]
        );
    }

    /// The `points` of the sweep line with `data-sweep="{sweep}"`.
    fn sweep_line(svg: &str, sweep: &str) -> Vec<(f64, f64)> {
        let start = svg
            .find(&format!(r#"class="sweep-line" data-sweep="{sweep}""#))
            .unwrap();
        points_of(&svg[start..], "sweep-line")
    }

    #[test]
    fn each_sweep_has_its_own_marker_line_and_legend_entry() {
        let mut s = scatter(&[
            (1.0, 1.0, true, Some(1.0)),
            (2.0, 2.0, false, Some(0.0)),
            (3.0, 0.0, true, Some(0.5)),
            (4.0, 3.0, false, Some(0.0)),
            (9.0, 9.0, false, None),
        ]);
        s.sweeps = vec!["sweep soup".into(), "sweep morl".into()];
        s.points[2].sweep = Some(1);
        s.points[3].sweep = Some(1);
        s.points[2].notes = vec!["weights a 0.5 · b 0.5".into()];
        let svg = scatter_svg(&s);
        let p = scatter_positions(&s);
        let rounded =
            |(x, y): (f64, f64)| (fixed(x, 1).parse().unwrap(), fixed(y, 1).parse().unwrap());
        assert_eq!(
            sweep_line(&svg, "sweep soup"),
            vec![rounded(p[1]), rounded(p[0])]
        );
        assert_eq!(
            sweep_line(&svg, "sweep morl"),
            vec![rounded(p[3]), rounded(p[2])]
        );
        let marker_of = |system: &str| {
            let at = svg.find(&format!(r#"data-system="{system}""#)).unwrap();
            attr_after(&svg[at..], "data-marker")
        };
        assert_eq!(marker_of("s0"), marker_of("s1"));
        assert_ne!(marker_of("s0"), marker_of("s2"), "shapes tell sweeps apart");
        assert_eq!(marker_of("s4"), "circle", "no sweep: the plain marker");
        let legend = &svg[svg.find(r#"class="scatter-legend""#).unwrap()..];
        assert!(legend.contains(">sweep soup (2)</text>"), "{legend}");
        assert!(legend.contains(">sweep morl (2)</text>"), "{legend}");
        assert!(legend.contains("no sweep"), "{legend}");
        assert!(
            svg.contains(
                "<title>s2: m/x = 3, m/y = 0 (on the front, sweep morl, λ = 0.5, weights a 0.5 · b 0.5)</title>"
            ),
            "{svg}"
        );
        // The legend adds height below the plot; the plot itself is unchanged.
        assert!(!svg.contains(&format!(r#"viewBox="0 0 {W} {H}""#)));
        assert_eq!(scatter_positions(&s), p);
    }

    fn attr_after(text: &str, attribute: &str) -> String {
        let marker = format!(r#"{attribute}=""#);
        let rest = &text[text.find(&marker).unwrap() + marker.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }

    #[test]
    fn no_sweep_means_no_legend() {
        let svg = scatter_svg(&scatter(&[(1.0, 1.0, true, None), (2.0, 0.5, true, None)]));
        assert!(!svg.contains(r#"class="scatter-legend""#));
        assert!(svg.contains(&format!(r#"viewBox="0 0 {W} {H}""#)));
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let labels: Vec<String> = ticks(0.0, 1.0).into_iter().map(tick_label).collect();
        assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
        let t = ticks(0.13, 0.87);
        assert!(t.first().unwrap() >= &0.13 && t.last().unwrap() <= &0.87);
        assert!(t.len() >= 3);
    }
}
