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

/// A metric value for a table: four significant decimals for values under
/// 100, fewer for larger ones.
pub fn number(value: f64) -> String {
    let a = value.abs();
    if a >= 1000.0 {
        fixed(value, 1)
    } else if a >= 100.0 {
        fixed(value, 2)
    } else {
        fixed(value, 4)
    }
}

/// `mean ± half` with the half-width rounded like the mean.
pub fn plus_minus(mean: f64, half: f64) -> String {
    format!("{} ± {}", number(mean), number(half))
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
    fn numbers_keep_four_decimals_when_small() {
        assert_eq!(number(0.123456), "0.1235");
        assert_eq!(number(1234.56), "1234.6");
        assert_eq!(plus_minus(0.5, 0.01234), "0.5000 ± 0.0123");
    }
}
