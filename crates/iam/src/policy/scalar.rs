//! The typed values of condition operators: numbers, instants and IP address blocks.
//!
//! Policy values are parsed once at compile time (and rejected with a message if malformed);
//! request values are parsed when a condition looks at them, and one that does not parse
//! simply does not match.

use std::net::IpAddr;

/// A decimal number as the Numeric operators accept it: `-?digits(.digits)?`.
///
/// Stricter than `f64::from_str`, which would also take `inf`, `NaN` and `1e5`: none of these
/// is a number in a policy.
pub(super) fn parse_number(text: &str) -> Option<f64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    text.parse().ok()
}

/// An instant as nanoseconds since the Unix epoch (UTC).
///
/// Accepts epoch seconds (`1700000000`, optionally negative or with a fraction, the form of
/// `aws:EpochTime`) and the W3C profile of ISO 8601 that AWS documents: `YYYY-MM-DD`,
/// `YYYY-MM-DDThh:mmTZD`, `YYYY-MM-DDThh:mm:ssTZD`, `YYYY-MM-DDThh:mm:ss.sTZD` where TZD is
/// `Z` or `±hh:mm` (RFC 3339, the form of `aws:CurrentTime`, is a subset). The bare year and
/// year-month forms are not accepted: `2024` would be ambiguous with epoch seconds.
pub(super) fn parse_date(text: &str) -> Option<i128> {
    if let Some(epoch) = parse_epoch(text) {
        return Some(epoch);
    }
    let b = text.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut secs = days_from_civil(year, month, day) * 86_400;
    let mut nanos = 0i128;
    if b.len() > 10 {
        if !matches!(b[10], b'T' | b't') || b.len() < 16 || b[13] != b':' {
            return None;
        }
        let (hour, minute) = (digits(b, 11, 2)?, digits(b, 14, 2)?);
        let mut at = 16;
        let mut second = 0;
        if b.get(at) == Some(&b':') {
            second = digits(b, at + 1, 2)?;
            at += 3;
            if b.get(at) == Some(&b'.') {
                let start = at + 1;
                at = start;
                while b.get(at).is_some_and(u8::is_ascii_digit) {
                    at += 1;
                }
                if at == start {
                    return None;
                }
                // Keep nanosecond precision; further digits cannot change a comparison of
                // policy instants, which AWS writes to the second.
                let frac = &text[start..at.min(start + 9)];
                nanos = frac.parse::<i128>().ok()? * 10i128.pow(9 - frac.len() as u32);
            }
        }
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let offset = match &b[at..] {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
                let (h, m) = (digits(b, at + 1, 2)?, digits(b, at + 4, 2)?);
                if h > 23 || m > 59 {
                    return None;
                }
                let offset = h * 3600 + m * 60;
                if *sign == b'+' { offset } else { -offset }
            }
            _ => return None,
        };
        secs += hour * 3600 + minute * 60 + second - offset;
    }
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// Epoch seconds: `-?digits(.digits)?`, at most 15 integer digits (far beyond any date).
fn parse_epoch(text: &str) -> Option<i128> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if int.is_empty() || int.len() > 15 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if unsigned.contains('.') && (frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let frac = &frac[..frac.len().min(9)];
    let frac_nanos = if frac.is_empty() { 0 } else { frac.parse::<i128>().ok()? * 10i128.pow(9 - frac.len() as u32) };
    let value = int.parse::<i128>().ok()? * 1_000_000_000 + frac_nanos;
    Some(if negative { -value } else { value })
}

/// The decimal number in `b[at..at + len]`, all digits.
fn digits(b: &[u8], at: usize, len: usize) -> Option<i64> {
    let field = b.get(at..at + len)?;
    field.iter().try_fold(0i64, |n, d| d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0')))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (the civil-from-days inversion: count
/// in 400-year eras that start on March 1st, so the leap day ends each year).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// An IPv4 or IPv6 block (a plain address is a block of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cidr {
    V4 { network: u32, mask: u32 },
    V6 { network: u128, mask: u128 },
}

impl Cidr {
    /// Parses `address` or `address/prefix-length`. Host bits under the mask are ignored
    /// (`10.1.2.3/8` is `10.0.0.0/8`), as AWS accepts them.
    pub(super) fn parse(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let ip: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block ({address:?} is not an address)"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = match prefix {
            None => max,
            Some(p) => match p.parse::<u32>() {
                Ok(len) if len <= max && !p.starts_with('+') => len,
                _ => {
                    return Err(format!(
                        "{text:?} is not a CIDR block: the prefix length must be 0 to {max}, found {p:?}"
                    ));
                }
            },
        };
        Ok(match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                Cidr::V4 { network: u32::from(v4) & mask, mask }
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                Cidr::V6 { network: u128::from(v6) & mask, mask }
            }
        })
    }

    /// Whether the block holds `ip`. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a
    /// dual-stack socket reports for an IPv4 client) counts as its IPv4 address.
    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (*self, ip) {
            (Cidr::V4 { network, mask }, IpAddr::V4(v4)) => u32::from(v4) & mask == network,
            (Cidr::V6 { network, mask }, IpAddr::V6(v6)) => u128::from(v6) & mask == network,
            _ => false,
        }
    }
}
