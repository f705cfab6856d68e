//! Static files, embedded in the binary.

/// A static file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its bytes.
    pub body: &'static [u8],
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its `Cache-Control`: pages link the assets with a version in the query,
    /// so a browser may keep them for a year.
    pub cache_control: &'static str,
}

const FOREVER: &str = "public, max-age=31536000, immutable";

/// The htmx version vendored in `web/static/htmx.min.js` (`npm pack htmx.org@2`).
pub const HTMX_VERSION: &str = "2.0.11";

/// The asset served at `/static/{name}`, if any.
pub fn get(name: &str) -> Option<Asset> {
    let (body, content_type): (&'static [u8], &'static str) = match name {
        "htmx.min.js" => (
            include_bytes!("../static/htmx.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "htmx.LICENSE" => (
            include_bytes!("../static/htmx.LICENSE"),
            "text/plain; charset=utf-8",
        ),
        "style.css" => (
            include_bytes!("../static/style.css"),
            "text/css; charset=utf-8",
        ),
        "pages.js" => (
            include_bytes!("../static/pages.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return None,
    };
    Some(Asset {
        body,
        content_type,
        cache_control: FOREVER,
    })
}

/// A short hash of the stylesheet and script, put in their URLs so that a
/// changed file is fetched again despite the year-long cache.
pub fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        // FNV-1a: no dependency, stable across builds.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for file in [
            &include_bytes!("../static/style.css")[..],
            &include_bytes!("../static/pages.js")[..],
        ] {
            for byte in file {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{:08x}", hash >> 32)
    })
}
