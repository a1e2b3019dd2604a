//! The live mirror of the visitor's page: WebSocket frames between the
//! visitor's browser, the broker and the agent console.
//!
//! # Sockets
//! - `GET /v1/sessions/{id}/mirror` (WebSocket), the visitor's stream. The
//!   first frame is [`Up::Hello`] with the session's device token; the broker
//!   answers [`Down::Welcome`] with the site's shared pages, then the visitor
//!   sends [`Up::Page`] (a snapshot) or [`Up::Hidden`], then [`Up::Ops`].
//!   The broker may ask for a fresh snapshot with [`Down::Resync`].
//! - `GET /v1/sessions/{id}/mirror/view` (WebSocket), the agent's view. The
//!   first frame is [`ViewerHello`] with the agent's credential; the broker
//!   then sends [`View::Presence`], the latest [`View::Page`] (or
//!   [`View::Hidden`]) and the [`View::Ops`] since, then everything new.
//!
//! Credentials travel in the first frame, never in the URL. Both sockets
//! are open only while the session is `active`; the broker closes them with
//! one of the `CLOSE_*` codes below.
//!
//! # Document model
//! A page is a flat list of [`Node`]s in document order, each naming its
//! parent, so neither side recurses on untrusted depth. Ids are chosen by the
//! visitor's browser, unique for the life of one snapshot; `0` is the
//! document itself (the parent of `<html>`) and, in [`Op::Scroll`], the page's
//! own scrolling.
//!
//! # What never travels
//! The visitor's browser leaves out, before anything is serialised: the
//! widget's own UI, scripts, comments, `<iframe>`/`<object>` contents,
//! `<meta>`/`<base>` and every link that is not a stylesheet, event-handler
//! attributes, `javascript:` URLs, the value of passwords, hidden and file
//! inputs, and everything inside a redacted element (see [`Redacted`]). The
//! rules are [`element_allowed`] and [`attribute_allowed`], shared by the
//! three parties: the broker refuses a frame that breaks them, and the
//! console skips anything that would. The broker also refuses, for the page
//! it holds: any later op that gives a redacted element children,
//! attributes, text or a value, and any value for a password, hidden or file
//! input (including one that becomes such an input through an `Attr` op).
//!
//! Text of `<style>` elements and of `sheets` travels as it is: the agent's
//! mirror is a sandboxed frame without scripts under a policy that allows
//! none (`script-src 'none'`), so CSS cannot run anything there.
//!
//! Besides the `CLOSE_*` codes, the broker closes with 1001 when it shuts
//! down and 1013 when a viewer falls too far behind (it reconnects and
//! catches up from the broker's copy of the page).

use serde::{Deserialize, Serialize};

/// Largest frame either side may send, in bytes.
pub const MAX_FRAME_BYTES: usize = 4 << 20;

/// Close code: the first frame was not a hello with a valid credential.
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
/// Close code: a frame was malformed, too large, or broke the privacy rules.
pub const CLOSE_BAD_FRAME: u16 = 4400;
/// Close code: the session is not `active` (not yet, or any more).
pub const CLOSE_NOT_ACTIVE: u16 = 4409;
/// Close code: the visitor sent faster than the broker allows; reconnect
/// after a pause (a fresh snapshot follows).
pub const CLOSE_TOO_FAST: u16 = 4429;
/// Close code: a newer visitor connection (a reload, another tab) replaced
/// this one.
pub const CLOSE_REPLACED: u16 = 4410;

/// Frames from the visitor's browser to the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum Up {
    /// First frame: the session's device token.
    Hello { token: String },
    /// A whole page: sent first, after a navigation, and on [`Down::Resync`].
    Page(Page),
    /// The visitor is on a page that is not shared: nothing of it is sent.
    Hidden,
    /// Changes since the last frame, in order (one frame per animation frame).
    Ops { ops: Vec<Op> },
}

/// Frames from the broker to the visitor's browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Down {
    /// The hello was accepted. `pages`: the site's shared-page patterns
    /// (see [`page_shared`]).
    Welcome { pages: Vec<String> },
    /// Send a fresh [`Up::Page`] (the broker's catch-up log is full).
    Resync,
}

/// The agent console's first (and only) frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum ViewerHello {
    /// The agent's API token or JWT.
    Hello { token: String },
}

/// Frames from the broker to the agent console. `Page`, `Hidden` and `Ops`
/// are the visitor's frames as the broker received and checked them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum View {
    Page(Page),
    Hidden,
    Ops {
        ops: Vec<Op>,
    },
    /// Whether the visitor's page is connected right now (it is not for a
    /// moment while the visitor changes page).
    Presence {
        online: bool,
    },
}

/// A snapshot of the visitor's page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Origin and path of the page, without query or fragment (they often
    /// carry private data).
    pub url: String,
    pub title: String,
    /// Viewport size in CSS pixels.
    pub w: u32,
    pub h: u32,
    /// Page scroll offset in CSS pixels.
    pub x: i32,
    pub y: i32,
    /// The document, parents before children, siblings in order.
    pub nodes: Vec<Node>,
    /// Text of the page's constructed stylesheets (`adoptedStyleSheets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sheets: Vec<String>,
}

/// One node of the page: an element (`e` set) or a text node (`x` set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Id, > 0.
    pub i: u32,
    /// Parent's id (0: the document).
    pub p: u32,
    /// Element: local name, lowercase for HTML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Element namespace.
    #[serde(default, skip_serializing_if = "Ns::is_html")]
    pub ns: Ns,
    /// Element attributes that passed [`attribute_allowed`], URLs made absolute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub a: Vec<(String, String)>,
    /// Text node: its text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Form field: its current value (`input`, `textarea`, `select`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
    /// Checkbox or radio: whether it is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<bool>,
    /// The element is redacted: only its box is sent (then `a`, `v`, `c` are
    /// empty and no node has it as parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r: Option<Redacted>,
}

/// An element's namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ns {
    #[default]
    Html,
    Svg,
    Math,
}

impl Ns {
    pub fn is_html(&self) -> bool {
        *self == Ns::Html
    }

    /// The namespace URI, for `createElementNS`.
    pub fn uri(self) -> &'static str {
        match self {
            Ns::Html => "http://www.w3.org/1999/xhtml",
            Ns::Svg => "http://www.w3.org/2000/svg",
            Ns::Math => "http://www.w3.org/1998/Math/MathML",
        }
    }
}

/// What the agent sees of a redacted element: a box of its size, where it
/// was, and nothing of its text, value or attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redacted {
    /// Border-box size in CSS pixels.
    pub w: u32,
    pub h: u32,
    /// Laid out as a block (else inline-block).
    #[serde(default, skip_serializing_if = "is_false")]
    pub b: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One change to the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "o", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Element `i`'s children are now `c`, in order: ids of nodes the
    /// mirror has, or of the new nodes in `n` (flat, parents first; the top
    /// ones have `p == i`). Children not in `c` are removed.
    Kids { i: u32, c: Vec<u32>, n: Vec<Node> },
    /// Attribute `k` of element `i` is now `v` (`None`: removed).
    Attr {
        i: u32,
        k: String,
        v: Option<String>,
    },
    /// Text node `i` now reads `x`.
    Text { i: u32, x: String },
    /// The visitor changed form field `i`: value `v` or checked `c`.
    Value {
        i: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        v: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        c: Option<bool>,
    },
    /// Element `i` (0: the page) scrolled to `x`, `y`.
    Scroll { i: u32, x: i32, y: i32 },
    /// The viewport is now `w` × `h` CSS pixels.
    Viewport { w: u32, h: u32 },
    /// The pointer is at `x`, `y` in viewport coordinates.
    Pointer { x: i32, y: i32 },
    /// The visitor clicked at `x`, `y` in viewport coordinates.
    Click { x: i32, y: i32 },
}

/// Elements that never travel, whatever their attributes: scripts and
/// what could load or run something in the agent's browser, or steer it
/// elsewhere. (Iframes, objects and embeds may travel only as redacted
/// boxes.)
const FORBIDDEN_ELEMENTS: &[&str] = &[
    "script",
    "noscript",
    "template",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "portal",
    "fencedframe",
    "base",
    "meta",
    "slot",
    // SVG animation can rewrite an attribute (an href) after the checks.
    "set",
    "animate",
    "animatemotion",
    "animatetransform",
    "discard",
    "handler",
    "listener",
];

/// Whether an element named `name` (local name, any case) may travel with
/// attributes `attrs`. A `link` must be a stylesheet.
pub fn element_allowed(name: &str, attrs: &[(String, String)]) -> bool {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return false;
    }
    if FORBIDDEN_ELEMENTS
        .iter()
        .any(|f| f.eq_ignore_ascii_case(name))
    {
        return false;
    }
    if name.eq_ignore_ascii_case("link") {
        return attrs
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("rel") && is_stylesheet_rel(v));
    }
    true
}

/// Whether an element may travel as a redacted box: any valid element name
/// (a redacted box has no attributes and no children).
pub fn redacted_element_allowed(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_stylesheet_rel(rel: &str) -> bool {
    rel.split_ascii_whitespace()
        .any(|w| w.eq_ignore_ascii_case("stylesheet"))
}

/// Attributes that never travel: they would run, load or navigate
/// something in the agent's browser, take its focus, or carry secrets
/// (`nonce`, `integrity` of cross-origin loads, `value` is sent separately).
const FORBIDDEN_ATTRIBUTES: &[&str] = &[
    "srcdoc",
    "formaction",
    "action",
    "ping",
    "nonce",
    "integrity",
    "http-equiv",
    "autofocus",
    "contenteditable",
    "value",
    "srcset",
    "imagesrcset",
    "popovertarget",
    "popovertargetaction",
    "commandfor",
    "command",
];

/// Attributes whose value is a URL.
const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "xlink:href",
    "poster",
    "background",
    "cite",
    "data",
    "codebase",
    "longdesc",
    "manifest",
    "usemap",
    "lowsrc",
    "dynsrc",
];

/// Whether attribute `name` = `value` may travel. Names are checked without
/// regard to case.
pub fn attribute_allowed(name: &str, value: &str) -> bool {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
    {
        return false;
    }
    let bytes = name.as_bytes();
    if bytes.len() >= 2 && bytes[..2].eq_ignore_ascii_case(b"on") {
        return false;
    }
    if FORBIDDEN_ATTRIBUTES
        .iter()
        .any(|f| f.eq_ignore_ascii_case(name))
    {
        return false;
    }
    if is_url_attribute(name) {
        return url_allowed(value);
    }
    // A style attribute can hold `url(javascript:…)` or the old
    // `expression(…)`; scripts are off in the mirror, but refuse them anyway.
    if name.eq_ignore_ascii_case("style") {
        return !contains_ignore_case(value, "javascript:")
            && !contains_ignore_case(value, "expression(");
    }
    true
}

/// Whether attribute `name` (any case) holds a URL: the visitor's browser
/// makes these absolute before they are checked with [`url_allowed`].
pub fn is_url_attribute(name: &str) -> bool {
    URL_ATTRIBUTES.iter().any(|f| f.eq_ignore_ascii_case(name))
}

/// Whether a URL may travel: relative, `http(s)`, `mailto`, `tel`, or a
/// `data:image/…` that is not SVG (SVG images can hold scripts).
pub fn url_allowed(url: &str) -> bool {
    // Browsers ignore ASCII whitespace and control characters in a scheme.
    let squeezed: Vec<u8> = url
        .bytes()
        .filter(|b| !(b.is_ascii_whitespace() || b.is_ascii_control()))
        .take(32)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    let scheme_end = squeezed.iter().position(|&b| b == b':');
    let Some(end) = scheme_end else {
        return true; // relative
    };
    if squeezed[..end]
        .iter()
        .any(|&b| matches!(b, b'/' | b'?' | b'#'))
    {
        return true; // a colon in a relative path, query or fragment
    }
    match &squeezed[..end] {
        b"http" | b"https" | b"mailto" | b"tel" => true,
        b"data" => {
            squeezed[end..].starts_with(b":image/") && !squeezed[end..].starts_with(b":image/svg")
        }
        _ => false,
    }
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Whether a page whose path is `path` is shared under `patterns`: it
/// matches at least one pattern and no exclusion. A pattern is a path that
/// starts with `/`, where `*` stands for any characters (`/*` is every page,
/// `/help/*` everything under `/help/`); a leading `!` makes it an exclusion
/// (`!/account/*`; note that it does not exclude `/account` itself: list
/// `!/account` too). No patterns: nothing is shared. The path is matched as
/// given; the broker also matches its percent-decoded form, so an encoded
/// path cannot slip past an exclusion.
pub fn page_shared(patterns: &[String], path: &str) -> bool {
    let mut included = false;
    for pattern in patterns {
        match pattern.strip_prefix('!') {
            Some(excluded) => {
                if glob(excluded.as_bytes(), path.as_bytes()) {
                    return false;
                }
            }
            None => included = included || glob(pattern.as_bytes(), path.as_bytes()),
        }
    }
    included
}

/// Why `pattern` is not a valid shared-page pattern, if it is not.
pub fn check_page_pattern(pattern: &str) -> Result<(), &'static str> {
    let path = pattern.strip_prefix('!').unwrap_or(pattern);
    if !path.starts_with('/') {
        return Err("must start with \"/\" (or \"!/\" to exclude pages)");
    }
    if path
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'?' || b == b'#')
    {
        return Err("must be a path: no spaces, \"?\" or \"#\"");
    }
    Ok(())
}

/// `*` matches any run of bytes; everything else matches itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn shared_pages_follow_patterns_and_exclusions() {
        let p = pats(&["/*", "!/account/*", "!/checkout"]);
        assert!(page_shared(&p, "/"));
        assert!(page_shared(&p, "/products/lamp"));
        assert!(!page_shared(&p, "/account/settings"));
        assert!(!page_shared(&p, "/checkout"));
        assert!(page_shared(&p, "/checkout/done"));
        let help = pats(&["/help/*", "/", "/*.html"]);
        assert!(page_shared(&help, "/help/a/b"));
        assert!(page_shared(&help, "/"));
        assert!(page_shared(&help, "/support.html"));
        assert!(!page_shared(&help, "/help"));
        assert!(!page_shared(&help, "/about"));
        assert!(!page_shared(&[], "/"));
        assert!(check_page_pattern("/x/*").is_ok());
        assert!(check_page_pattern("!/x").is_ok());
        assert!(check_page_pattern("x").is_err());
        assert!(check_page_pattern("/a?b").is_err());
    }

    #[test]
    fn scripts_and_handlers_never_pass() {
        let none: Vec<(String, String)> = vec![];
        for bad in [
            "script", "SCRIPT", "iframe", "object", "embed", "meta", "base", "noscript", "set", "",
            "a b", "x<y",
        ] {
            assert!(!element_allowed(bad, &none), "{bad}");
        }
        assert!(element_allowed("div", &none));
        assert!(element_allowed("my-widget", &none));
        assert!(!element_allowed(
            "link",
            &[("rel".into(), "preload".into())]
        ));
        assert!(element_allowed(
            "link",
            &[("rel".into(), "Stylesheet".into())]
        ));
        for (k, v) in [
            ("onclick", "x()"),
            ("ONERROR", "x()"),
            ("href", "javascript:alert(1)"),
            ("href", " java\tscript:alert(1)"),
            ("href", "JAVASCRIPT:alert(1)"),
            ("src", "data:text/html,<script>"),
            ("src", "data:image/svg+xml,<svg onload=x>"),
            ("xlink:href", "vbscript:x"),
            ("srcdoc", "<script>"),
            ("formaction", "https://x"),
            ("style", "background:url(javascript:x)"),
            ("value", "secret"),
            ("a\"b", "x"),
        ] {
            assert!(!attribute_allowed(k, v), "{k}={v}");
        }
        for (k, v) in [
            ("href", "/cart"),
            ("href", "https://example.com/a:b"),
            ("href", "page?x=a:b"),
            ("src", "data:image/png;base64,AAAA"),
            ("class", "btn onclick"),
            ("style", "color: red"),
            ("aria-label", "Search"),
            ("data-id", "7"),
        ] {
            assert!(attribute_allowed(k, v), "{k}={v}");
        }
    }

    #[test]
    fn frames_have_the_documented_shape() {
        let page = Up::Page(Page {
            url: "https://shop.example/".into(),
            title: "Shop".into(),
            w: 800,
            h: 600,
            x: 0,
            y: 10,
            nodes: vec![
                Node {
                    i: 1,
                    p: 0,
                    e: Some("html".into()),
                    ..Node::default()
                },
                Node {
                    i: 2,
                    p: 1,
                    x: Some("hi".into()),
                    ..Node::default()
                },
                Node {
                    i: 3,
                    p: 1,
                    e: Some("input".into()),
                    r: Some(Redacted {
                        w: 100,
                        h: 20,
                        b: false,
                    }),
                    ..Node::default()
                },
            ],
            sheets: vec![],
        });
        let json = serde_json::to_string(&page).unwrap();
        assert_eq!(
            json,
            r#"{"t":"page","url":"https://shop.example/","title":"Shop","w":800,"h":600,"x":0,"y":10,"nodes":[{"i":1,"p":0,"e":"html"},{"i":2,"p":1,"x":"hi"},{"i":3,"p":1,"e":"input","r":{"w":100,"h":20}}]}"#
        );
        let back: View = serde_json::from_str(&json).unwrap();
        assert!(matches!(back, View::Page(ref p) if p.nodes.len() == 3));
        let ops = Up::Ops {
            ops: vec![
                Op::Kids {
                    i: 1,
                    c: vec![2, 4],
                    n: vec![Node {
                        i: 4,
                        p: 1,
                        x: Some("new".into()),
                        ..Node::default()
                    }],
                },
                Op::Attr {
                    i: 1,
                    k: "class".into(),
                    v: None,
                },
                Op::Value {
                    i: 5,
                    v: Some("abc".into()),
                    c: None,
                },
                Op::Scroll { i: 0, x: 0, y: 120 },
            ],
        };
        let json = serde_json::to_string(&ops).unwrap();
        assert_eq!(
            json,
            r#"{"t":"ops","ops":[{"o":"kids","i":1,"c":[2,4],"n":[{"i":4,"p":1,"x":"new"}]},{"o":"attr","i":1,"k":"class","v":null},{"o":"value","i":5,"v":"abc"},{"o":"scroll","i":0,"x":0,"y":120}]}"#
        );
        assert_eq!(serde_json::from_str::<Up>(&json).unwrap(), ops);
        assert_eq!(
            serde_json::to_string(&Up::Hidden).unwrap(),
            r#"{"t":"hidden"}"#
        );
        assert_eq!(
            serde_json::to_string(&Down::Resync).unwrap(),
            r#"{"t":"resync"}"#
        );
        assert!(serde_json::from_str::<Up>(
            r#"{"t":"ops","ops":[{"o":"text","i":1,"x":"a","extra":1}]}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Up>(r#"{"t":"hello","token":"a","more":1}"#).is_err());
        // Unknown fields in a node are refused (the broker checks every frame).
        assert!(serde_json::from_str::<Up>(r#"{"t":"page","url":"u","title":"","w":1,"h":1,"x":0,"y":0,"nodes":[{"i":1,"p":0,"e":"p","onclick":"x"}]}"#).is_err());
    }
}
