//! Pure helpers for showing a support code: grouping, spoken form, countdown.
//!
//! Kept free of DOM types so they are unit-tested natively.

/// Splits a six-digit code into the two groups the visitor sees (`123 456`).
/// Anything that is not six ASCII digits is returned whole in the first group.
pub fn groups(code: &str) -> (&str, &str) {
    // `get` rather than `split_at`: no panic path (and its formatting code)
    // ends up in the wasm for a split that cannot fail on six ASCII digits.
    match (code.get(..3), code.get(3..)) {
        (Some(a), Some(b)) if agent_assist_protocol::is_valid_code(code) => (a, b),
        _ => (code, ""),
    }
}

/// The code with a space between every digit, so a screen reader reads
/// `1 2 3 4 5 6` digit by digit rather than "one hundred twenty-three thousand…".
pub fn spoken(code: &str) -> String {
    let mut out = String::with_capacity(code.len() * 2);
    for (i, c) in code.chars().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Formats a number of seconds left as `mm:ss`, or `h:mm:ss` from one hour up.
pub fn countdown(total_secs: u32) -> String {
    let hours = total_secs / 3600;
    let minutes = (total_secs / 60) % 60;
    let seconds = total_secs % 60;
    let mut out = String::with_capacity(8);
    if hours > 0 {
        push_num(&mut out, hours, 1);
        out.push(':');
    }
    push_num(&mut out, minutes, 2);
    out.push(':');
    push_num(&mut out, seconds, 2);
    out
}

/// Seconds left, rounded up, until `deadline_ms` seen from `now_ms`: the
/// countdown shows `00:01` until the very last moment, never `00:00` early.
pub fn seconds_left(deadline_ms: f64, now_ms: f64) -> u32 {
    let left = (deadline_ms - now_ms) / 1000.0;
    if left <= 0.0 {
        0
    } else {
        // `as` saturates for floats, so a huge value cannot wrap.
        left.ceil() as u32
    }
}

/// `n` in decimal, for messages and CSS lengths (see [`push_num`]).
pub fn decimal(n: u32) -> String {
    let mut out = String::with_capacity(10);
    push_num(&mut out, n, 1);
    out
}

/// Appends `n` in decimal, zero-padded to at least `width` digits. Written by
/// hand because `format!` machinery is a noticeable share of a small wasm file.
fn push_num(out: &mut String, n: u32, width: usize) {
    let mut digits = [0u8; 10];
    let mut len = 0;
    let mut rest = n;
    loop {
        digits[len] = b'0' + (rest % 10) as u8;
        len += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for _ in len..width {
        out.push('0');
    }
    for &d in digits[..len].iter().rev() {
        out.push(d as char);
    }
}

/// Keeps only the ASCII digits of `text` (for copy and paste of a code).
pub fn digits_only(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_shown_in_two_groups_of_three() {
        assert_eq!(groups("123456"), ("123", "456"));
        assert_eq!(groups("000042"), ("000", "042"));
        assert_eq!(groups("12345"), ("12345", ""));
    }

    #[test]
    fn spoken_code_separates_every_digit() {
        assert_eq!(spoken("123456"), "1 2 3 4 5 6");
        assert_eq!(spoken("007"), "0 0 7");
    }

    #[test]
    fn countdown_is_zero_padded_minutes_and_seconds() {
        assert_eq!(countdown(1200), "20:00");
        assert_eq!(countdown(599), "09:59");
        assert_eq!(countdown(61), "01:01");
        assert_eq!(countdown(0), "00:00");
        assert_eq!(countdown(3600), "1:00:00");
        assert_eq!(countdown(86399), "23:59:59");
    }

    #[test]
    fn seconds_left_rounds_up_and_stops_at_zero() {
        assert_eq!(seconds_left(10_000.0, 0.0), 10);
        assert_eq!(seconds_left(10_000.0, 1.0), 10);
        assert_eq!(seconds_left(10_000.0, 9_999.0), 1);
        assert_eq!(seconds_left(10_000.0, 10_000.0), 0);
        assert_eq!(seconds_left(10_000.0, 20_000.0), 0);
        assert_eq!(seconds_left(f64::MAX, 0.0), u32::MAX);
    }

    #[test]
    fn decimal_writes_plain_numbers() {
        assert_eq!(decimal(0), "0");
        assert_eq!(decimal(200), "200");
        assert_eq!(decimal(u32::MAX), "4294967295");
    }

    #[test]
    fn copy_text_keeps_digits_only() {
        assert_eq!(digits_only("123 456"), "123456");
        assert_eq!(digits_only("1 2 3 4 5 6123 456"), "123456123456");
    }
}
