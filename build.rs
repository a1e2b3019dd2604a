//! Minifies the widget's stylesheets into `OUT_DIR` for `include_str!`:
//! comments and runs of white space go, and so do spaces next to `{`, `}`,
//! `;` and `,`, after `:`, and the `;` before a `}` (never inside quoted
//! strings; a space *before* `:` stays, as in `.a :hover`). The boot module ships its
//! sheet with every page load, so its comments should not ride along.

use std::path::Path;

fn main() {
    let out = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    for name in ["link.css", "frame.css", "widget.css"] {
        let src = Path::new("src/ui").join(name);
        println!("cargo:rerun-if-changed={}", src.display());
        let css = std::fs::read_to_string(&src).expect("the stylesheet is readable");
        std::fs::write(Path::new(&out).join(name), minify(&css)).expect("OUT_DIR is writable");
    }
}

fn minify(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut chars = css.chars().peekable();
    let mut space = false;
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for d in chars.by_ref() {
                    if last == '*' && d == '/' {
                        break;
                    }
                    last = d;
                }
                space = true;
            }
            '"' | '\'' => {
                push_space(&mut out, &mut space, c);
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            c if c.is_whitespace() => space = true,
            '}' => {
                space = false;
                if out.ends_with(';') {
                    out.pop();
                }
                out.push('}');
            }
            c => {
                push_space(&mut out, &mut space, c);
                out.push(c);
            }
        }
    }
    out
}

/// Writes the pending space before `next` unless one side makes it useless.
fn push_space(out: &mut String, space: &mut bool, next: char) {
    const TIGHT: [char; 4] = ['{', '}', ';', ','];
    if std::mem::take(space)
        && !out.is_empty()
        && !TIGHT.contains(&next)
        && !out.ends_with(TIGHT)
        && !out.ends_with(':')
    {
        out.push(' ');
    }
}
