//! Proleptic Gregorian calendar arithmetic, enough for HTTP-dates and RFC 3339 timestamps.
//!
//! Days are counted from 1970-01-01 with the era-based algorithm (400-year cycles of 146,097
//! days), which is exact for every year and needs no tables. All arithmetic is in `i128`, so no
//! input a `SystemTime` can hold overflows it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAYS_PER_ERA: i128 = 146_097;
/// Days from 0000-03-01 to 1970-01-01.
const EPOCH_SHIFT: i128 = 719_468;

/// Days since 1970-01-01 of the date `year-month-day` (`month` 1..=12, `day` 1..=31).
pub(super) fn days_from_civil(year: i128, month: u32, day: u32) -> i128 {
    // Count years from March, so the leap day is the last day of the year.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i128::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i128::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * DAYS_PER_ERA + day_of_era - EPOCH_SHIFT
}

/// The date `(year, month, day)` that is `days` days after 1970-01-01.
pub(super) fn civil_from_days(days: i128) -> (i128, u32, u32) {
    let days = days + EPOCH_SHIFT;
    let era = days.div_euclid(DAYS_PER_ERA);
    let day_of_era = days - era * DAYS_PER_ERA;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    // Both are small and non-negative by construction.
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400;
    (if month <= 2 { year + 1 } else { year }, month, day)
}

pub(super) fn is_leap(year: i128) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub(super) fn days_in_month(year: i128, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Day of the week, 0 = Sunday, for a day count from 1970-01-01 (a Thursday).
pub(super) fn weekday(days: i128) -> usize {
    (days + 4).rem_euclid(7) as usize
}

/// Seconds since the epoch of a validated civil date and time of day (`second` may be 60, a
/// leap second, which lands on the next minute's first second).
pub(super) fn unix_seconds(
    year: i128,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> i128 {
    days_from_civil(year, month, day) * 86_400
        + i128::from(hour) * 3_600
        + i128::from(minute) * 60
        + i128::from(second)
}

/// `secs` seconds and `nanos` nanoseconds after (or, for negative `secs`, before) the epoch, if
/// the platform's `SystemTime` can hold it.
pub(super) fn system_time(secs: i128, nanos: u32) -> Option<SystemTime> {
    let whole = Duration::from_secs(u64::try_from(secs.unsigned_abs()).ok()?);
    let at = if secs >= 0 {
        UNIX_EPOCH.checked_add(whole)?
    } else {
        UNIX_EPOCH.checked_sub(whole)?
    };
    at.checked_add(Duration::from_nanos(u64::from(nanos)))
}

/// Whole seconds since the epoch of `t`, rounded toward the past.
pub(super) fn floor_unix_seconds(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::from(after.as_secs()),
        Err(e) => {
            let before = e.duration();
            -i128::from(before.as_secs()) - i128::from(before.subsec_nanos() > 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_days_across_eras() {
        for days in (-1_000_000..1_000_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(weekday(days_from_civil(1994, 11, 6)), 0);
        assert_eq!(unix_seconds(1994, 11, 6, 8, 49, 37), 784_111_777);
    }
}
