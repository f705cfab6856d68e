//! Formatting helpers shared by the templates and the chart builders.

use evaluator_stats::Outcome;

/// HTML/XML-escapes text for element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `value` with `digits` decimals.
pub fn fixed(value: f64, digits: usize) -> String {
    format!("{value:.digits$}")
}

/// A metric value for a table: integers as integers (`33`, not `33.0000`),
/// anything else to four significant digits (`0.1235`, `110.9`, `1235`).
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return fixed(value, 0);
    }
    fixed(value, significant_decimals(value, 4))
}

/// Decimals that keep `digits` significant digits of `value` (0 to 6).
fn significant_decimals(value: f64, digits: i32) -> usize {
    if value == 0.0 {
        return digits.max(0) as usize;
    }
    let magnitude = value.abs().log10().floor() as i32;
    (digits - 1 - magnitude).clamp(0, 6) as usize
}

/// `mean ± half`, both to the decimals that give the half-width two
/// significant digits (`110.9 ± 3.1`, `0.546 ± 0.046`): the interval says how
/// many of the mean's digits mean anything. Without a half-width (one
/// sample), the mean alone as [`number`] prints it, `± 0`.
pub fn plus_minus(mean: f64, half: f64) -> String {
    // A half-width at rounding-error size (identical values summed in floating
    // point) is no interval: it would ask for all six decimals of nothing.
    let negligible = half <= 1e-9 * mean.abs().max(1.0);
    if !(half.is_finite() && mean.is_finite()) || negligible {
        return format!("{} ± 0", number(mean));
    }
    let decimals = significant_decimals(half, 2);
    format!("{} ± {}", fixed(mean, decimals), fixed(half, decimals))
}

/// Escapes `text` for HTML, and shows its `` `code` `` spans as `<code>`
/// (messages name commands and values that way; printed raw, the backticks
/// would show). An unpaired backtick stays as it is.
pub fn rich(text: &str) -> String {
    let parts: Vec<&str> = text.split('`').collect();
    if parts.len() < 3 {
        return escape(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let paired = if parts.len() % 2 == 1 {
        parts.len()
    } else {
        parts.len() - 1
    };
    for (i, part) in parts.iter().enumerate() {
        if i >= paired {
            out.push('`');
            out.push_str(&escape(part));
        } else if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(&escape(part));
            out.push_str("</code>");
        } else {
            out.push_str(&escape(part));
        }
    }
    out
}

/// Percent-encodes a query-string value (everything but unreserved characters).
pub fn query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds `path?k=v&...`, encoding the values and skipping empty ones.
pub fn href(path: &str, params: &[(&str, &str)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", query_value(v)))
        .collect();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// A verdict from the first system's (A's) point of view; `—` when not asked.
pub fn verdict(value: Option<Outcome>) -> &'static str {
    match value {
        Some(Outcome::AWins) => "A",
        Some(Outcome::BWins) => "B",
        Some(Outcome::Tie) => "tie",
        None => "—",
    }
}

/// The long form of [`verdict`] for titles and screen readers.
pub fn verdict_long(value: Option<Outcome>) -> &'static str {
    match value {
        Some(Outcome::AWins) => "A preferred",
        Some(Outcome::BWins) => "B preferred",
        Some(Outcome::Tie) => "tie",
        None => "not asked",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_the_five_characters() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn hrefs_encode_system_names_with_reserved_characters() {
        assert_eq!(
            href(
                "/d/compare",
                &[("a", "sft+rl=0.5"), ("b", "base:v1"), ("q", "")]
            ),
            "/d/compare?a=sft%2Brl%3D0.5&b=base%3Av1"
        );
    }

    #[test]
    fn numbers_keep_four_significant_digits_and_integers_stay_integers() {
        assert_eq!(number(0.123456), "0.1235");
        assert_eq!(number(1234.56), "1235");
        assert_eq!(number(110.94), "110.9");
        assert_eq!(number(33.0), "33");
        assert_eq!(number(-2.0), "-2");
        assert_eq!(number(0.000123456), "0.000123");
    }

    #[test]
    fn intervals_set_the_precision_of_their_mean() {
        assert_eq!(plus_minus(110.94, 3.1354), "110.9 ± 3.1");
        assert_eq!(plus_minus(0.5459, 0.0456), "0.546 ± 0.046");
        assert_eq!(plus_minus(0.5, 0.01234), "0.500 ± 0.012");
        assert_eq!(plus_minus(2.0, 0.0), "2 ± 0");
        assert_eq!(plus_minus(0.75, 1e-17), "0.7500 ± 0");
        assert_eq!(plus_minus(1250.0, 45.0), "1250 ± 45");
    }

    #[test]
    fn code_spans_in_messages_become_code_elements() {
        assert_eq!(
            rich("run `evaluator compare` <now>"),
            "run <code>evaluator compare</code> &lt;now&gt;"
        );
        assert_eq!(rich("a `b` c `d"), "a <code>b</code> c `d");
        assert_eq!(rich("no code"), "no code");
    }
}
