//! The `date-time` and `time` formats as Python reads them: like RFC 3339, but
//! the UTC offset and the seconds may be left out, and a space may separate
//! date and time ("2024-05-06 07:08"). A stricter check would refuse values
//! FastAPI apps accept; the handler's type still parses the value after this.

/// `YYYY-MM-DD` followed by `T` or a space and a [`is_time`] time.
pub fn is_date_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() > 11
        && is_date(&text[..10])
        && matches!(bytes[10], b'T' | b't' | b' ')
        && is_time(&text[11..])
}

/// `HH:MM[:SS[.fraction]]` and an optional `Z` or `±HH[:]MM` offset.
pub fn is_time(text: &str) -> bool {
    let (clock, offset) = split_offset(text);
    offset.is_none_or(is_offset) && is_clock(clock)
}

fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) = (number(&b[..4]), number(&b[5..7]), number(&b[8..]))
    else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

fn split_offset(text: &str) -> (&str, Option<&str>) {
    if let Some(clock) = text.strip_suffix(['Z', 'z']) {
        return (clock, None);
    }
    match text.rfind(['+', '-']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    }
}

fn is_offset(text: &str) -> bool {
    let b = text.as_bytes();
    let (hours, minutes) = match b.len() {
        5 if b[2] == b':' => (&b[..2], &b[3..]),
        4 => (&b[..2], &b[2..]),
        2 => (b, &b"00"[..]),
        _ => return false,
    };
    matches!((number(hours), number(minutes)), (Some(h), Some(m)) if h < 24 && m < 60)
}

fn is_clock(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 5 || b[2] != b':' {
        return false;
    }
    let (Some(hour), Some(minute)) = (number(&b[..2]), number(&b[3..5])) else {
        return false;
    };
    if hour > 23 || minute > 59 {
        return false;
    }
    match &b[5..] {
        [] => true,
        [b':', rest @ ..] if rest.len() >= 2 => {
            let seconds_ok = number(&rest[..2]).is_some_and(|s| s <= 60);
            let fraction_ok = match &rest[2..] {
                [] => true,
                [b'.' | b',', digits @ ..] => {
                    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
                }
                _ => false,
            };
            seconds_ok && fraction_ok
        }
        _ => false,
    }
}

fn number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times_with_or_without_offset_and_seconds() {
        for ok in [
            "2024-05-06T07:08:09Z",
            "2024-05-06T07:08:09+02:00",
            "2024-05-06T07:08:09.123456-0530",
            "2024-05-06T07:08:09",
            "2024-05-06 07:08",
            "2024-02-29T00:00:00",
        ] {
            assert!(is_date_time(ok), "{ok}");
        }
        for bad in [
            "2024-05-06",
            "2023-02-29T00:00:00",
            "2024-13-01T00:00:00",
            "2024-05-06T24:00:00",
            "2024-05-06T07:60",
            "2024-05-06X07:08",
            "2024-05-06T07:08:09+25:00",
            "2024-05-06T07:08:09.",
            "yesterday",
        ] {
            assert!(!is_date_time(bad), "{bad}");
        }
    }

    #[test]
    fn times_with_or_without_offset_and_seconds() {
        for ok in [
            "07:08",
            "07:08:09",
            "07:08:09.5",
            "07:08:09Z",
            "07:08+01:00",
        ] {
            assert!(is_time(ok), "{ok}");
        }
        for bad in ["7:08", "07:8", "25:00", "07:08:", "07:08:09+1", "noon"] {
            assert!(!is_time(bad), "{bad}");
        }
    }
}
