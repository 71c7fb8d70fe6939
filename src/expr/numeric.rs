//! Exact `numeric` arithmetic with PostgreSQL's rules: result scales, rounding
//! half away from zero, the special values NaN and ±Infinity, and range limits.
//!
//! Scales follow PostgreSQL: `+`/`-` keep the larger input scale, `*` adds the
//! scales, `%` keeps the larger scale, and `/` uses PostgreSQL's
//! `select_div_scale` (at least 16 significant digits, at least either input's
//! scale, at most 1000), so `1 / 3` is `0.33333333333333333333` as in psql.

use std::cmp::Ordering;
use std::str::FromStr;

use bigdecimal::num_bigint::BigInt;
use bigdecimal::{BigDecimal, RoundingMode, Signed, ToPrimitive, Zero};

use super::error::Fault;

/// PostgreSQL's largest display scale of a numeric (`NUMERIC_DSCALE_MAX`).
const MAX_SCALE: i64 = 16383;
/// PostgreSQL's most digits before the decimal point.
const MAX_INTEGER_DIGITS: i64 = 131072;
/// Division's result scale bounds (`NUMERIC_MIN_SIG_DIGITS`, `NUMERIC_MAX_DISPLAY_SCALE`).
const MIN_SIGNIFICANT_DIGITS: i64 = 16;
const MAX_DIVISION_SCALE: i64 = 1000;
/// Decimal digits per base-10000 digit, PostgreSQL's storage unit (`DEC_DIGITS`).
const DIGITS_PER_UNIT: i64 = 4;
/// The longest numeric text PostgreSQL can produce: every digit, a sign and a point.
const MAX_TEXT_LENGTH: usize = (MAX_INTEGER_DIGITS + MAX_SCALE + 2) as usize;
/// Exponents in input text (`1.5e3`) beyond this are refused, so a short
/// string cannot ask for a number with billions of digits.
const MAX_INPUT_EXPONENT: i64 = 1000;

/// A PostgreSQL `numeric` value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decimal {
    /// Always with a scale of zero or more, as PostgreSQL keeps it.
    Finite(BigDecimal),
    NaN,
    Infinity,
    NegativeInfinity,
}

impl Decimal {
    /// Reads PostgreSQL numeric text: `12.50`, `-3`, `1.5e3`, `NaN`,
    /// `Infinity`, `-Infinity` (surrounding spaces allowed).
    pub fn parse(text: &str) -> Option<Decimal> {
        let text = text.trim();
        if let Some(special) = parse_special(text) {
            return Some(special);
        }
        // Checked before any digit is converted: reading a long digit
        // string costs quadratic time, and PostgreSQL would refuse it anyway.
        if text.len() > MAX_TEXT_LENGTH {
            return None;
        }
        let exponent = plain_decimal_exponent(text)?;
        if exponent.abs() > MAX_INPUT_EXPONENT {
            return None;
        }
        let value = BigDecimal::from_str(text).ok()?;
        let value = if value.fractional_digit_count() < 0 {
            value.with_scale(0)
        } else {
            value
        };
        Decimal::checked(value).ok()
    }

    pub fn from_i64(value: i64) -> Decimal {
        Decimal::Finite(BigDecimal::from(value))
    }

    /// The exact decimal of the shortest text that reads back as `value`.
    pub fn from_f64(value: f64) -> Decimal {
        if value.is_nan() {
            Decimal::NaN
        } else if value.is_infinite() {
            signed_infinity(value < 0.0)
        } else {
            Decimal::parse(&value.to_string()).unwrap_or(Decimal::NaN)
        }
    }

    pub fn to_f64(&self) -> f64 {
        match self {
            Decimal::Finite(value) => value.to_plain_string().parse().unwrap_or(f64::NAN),
            Decimal::NaN => f64::NAN,
            Decimal::Infinity => f64::INFINITY,
            Decimal::NegativeInfinity => f64::NEG_INFINITY,
        }
    }

    /// PostgreSQL's output text: every digit of the scale, never an exponent.
    pub fn to_text(&self) -> String {
        match self {
            Decimal::Finite(value) => value.to_plain_string(),
            Decimal::NaN => "NaN".to_owned(),
            Decimal::Infinity => "Infinity".to_owned(),
            Decimal::NegativeInfinity => "-Infinity".to_owned(),
        }
    }

    /// Rounded half away from zero to an integer, if it fits an i64.
    pub fn to_i64_rounded(&self) -> Option<i64> {
        match self {
            Decimal::Finite(value) => value.with_scale_round(0, RoundingMode::HalfUp).to_i64(),
            _ => None,
        }
    }

    /// Accepts a finite result only within PostgreSQL's numeric range.
    fn checked(value: BigDecimal) -> Result<Decimal, Fault> {
        let scale = value.fractional_digit_count();
        let integer_digits = value.digits() as i64 - scale;
        if scale > MAX_SCALE || integer_digits > MAX_INTEGER_DIGITS {
            return Err(Fault::OutOfRange("numeric"));
        }
        Ok(Decimal::Finite(value))
    }

    /// The digits after the point a finite value shows (0 for the others).
    pub fn display_scale(&self) -> i64 {
        match self {
            Decimal::Finite(value) => Decimal::scale(value),
            _ => 0,
        }
    }

    fn scale(value: &BigDecimal) -> i64 {
        value.fractional_digit_count().max(0)
    }

    fn is_nan(&self) -> bool {
        matches!(self, Decimal::NaN)
    }

    fn is_zero(&self) -> bool {
        matches!(self, Decimal::Finite(value) if value.is_zero())
    }

    /// -1, 0 or 1; NaN counts as 0.
    fn signum(&self) -> i32 {
        match self {
            Decimal::Finite(value) if value.is_positive() => 1,
            Decimal::Finite(value) if value.is_negative() => -1,
            Decimal::Infinity => 1,
            Decimal::NegativeInfinity => -1,
            _ => 0,
        }
    }
}

fn parse_special(text: &str) -> Option<Decimal> {
    let (negative, word) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if word.eq_ignore_ascii_case("nan") {
        (!negative).then_some(Decimal::NaN)
    } else if word.eq_ignore_ascii_case("infinity") || word.eq_ignore_ascii_case("inf") {
        Some(signed_infinity(negative))
    } else {
        None
    }
}

fn signed_infinity(negative: bool) -> Decimal {
    if negative {
        Decimal::NegativeInfinity
    } else {
        Decimal::Infinity
    }
}

/// Checks `[+-]digits[.digits][e[+-]digits]` (at least one digit in the
/// mantissa) and returns the exponent, 0 when absent.
fn plain_decimal_exponent(text: &str) -> Option<i64> {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    match exponent {
        None => Some(0),
        Some(exponent) => parse_exponent(exponent),
    }
}

fn parse_exponent(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl Decimal {
    pub fn negate(&self) -> Decimal {
        match self {
            Decimal::Finite(value) => Decimal::Finite(-value),
            Decimal::NaN => Decimal::NaN,
            Decimal::Infinity => Decimal::NegativeInfinity,
            Decimal::NegativeInfinity => Decimal::Infinity,
        }
    }

    pub fn abs(&self) -> Decimal {
        match self {
            Decimal::Finite(value) => Decimal::Finite(value.abs()),
            Decimal::NaN => Decimal::NaN,
            _ => Decimal::Infinity,
        }
    }

    /// Sum, with the larger of the two scales.
    pub fn add(&self, other: &Decimal) -> Result<Decimal, Fault> {
        match (self, other) {
            (Decimal::Finite(a), Decimal::Finite(b)) => {
                let scale = Decimal::scale(a).max(Decimal::scale(b));
                Decimal::checked((a + b).with_scale(scale))
            }
            (Decimal::NaN, _) | (_, Decimal::NaN) => Ok(Decimal::NaN),
            (a, b) if a.signum() * b.signum() < 0 && !a.is_finite() && !b.is_finite() => {
                Ok(Decimal::NaN)
            }
            (Decimal::Finite(_), infinite) | (infinite, _) => Ok(infinite.clone()),
        }
    }

    pub fn subtract(&self, other: &Decimal) -> Result<Decimal, Fault> {
        self.add(&other.negate())
    }

    /// Product, with the sum of the two scales.
    pub fn multiply(&self, other: &Decimal) -> Result<Decimal, Fault> {
        match (self, other) {
            (Decimal::Finite(a), Decimal::Finite(b)) => {
                let scale = Decimal::scale(a) + Decimal::scale(b);
                if scale > MAX_SCALE {
                    return Err(Fault::OutOfRange("numeric"));
                }
                Decimal::checked((a * b).with_scale(scale))
            }
            (a, b) if a.is_nan() || b.is_nan() || a.is_zero() || b.is_zero() => Ok(Decimal::NaN),
            (a, b) => Ok(signed_infinity(a.signum() * b.signum() < 0)),
        }
    }

    fn is_finite(&self) -> bool {
        matches!(self, Decimal::Finite(_))
    }
}

impl Decimal {
    /// Quotient, rounded half away from zero at PostgreSQL's division scale.
    pub fn divide(&self, other: &Decimal) -> Result<Decimal, Fault> {
        if self.is_nan() || other.is_nan() {
            return Ok(Decimal::NaN);
        }
        if other.is_zero() {
            return Err(Fault::DivisionByZero);
        }
        match (self, other) {
            (Decimal::Finite(a), Decimal::Finite(b)) => {
                Decimal::checked(divide_rounded(a, b, division_scale(a, b)))
            }
            (Decimal::Finite(_), _) => Ok(Decimal::Finite(BigDecimal::zero())),
            (_, Decimal::Finite(_)) => Ok(signed_infinity(self.signum() * other.signum() < 0)),
            _ => Ok(Decimal::NaN),
        }
    }

    /// Remainder of truncating division (sign of the dividend), with the
    /// larger of the two scales.
    pub fn remainder(&self, other: &Decimal) -> Result<Decimal, Fault> {
        if self.is_nan() || other.is_nan() {
            return Ok(Decimal::NaN);
        }
        if other.is_zero() {
            return Err(Fault::DivisionByZero);
        }
        match (self, other) {
            (Decimal::Finite(a), Decimal::Finite(b)) => Decimal::checked(finite_remainder(a, b)),
            (Decimal::Finite(_), _) => Ok(self.clone()),
            _ => Ok(Decimal::NaN),
        }
    }

    /// Rounded half away from zero to `digits` decimal places; a negative
    /// `digits` rounds to tens, hundreds, ... and leaves scale 0.
    pub fn round(&self, digits: i64) -> Result<Decimal, Fault> {
        let Decimal::Finite(value) = self else {
            return Ok(self.clone());
        };
        if digits > MAX_SCALE {
            return Err(Fault::OutOfRange("numeric"));
        }
        let digits = digits.max(-MAX_INTEGER_DIGITS - 1);
        let rounded = value.with_scale_round(digits, RoundingMode::HalfUp);
        Decimal::checked(rounded.with_scale(digits.max(0)))
    }

    /// Total order as PostgreSQL sorts numerics: -Infinity, finite values,
    /// Infinity, then NaN (which equals itself).
    pub fn total_cmp(&self, other: &Decimal) -> Ordering {
        match (self, other) {
            (Decimal::Finite(a), Decimal::Finite(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Decimal::NegativeInfinity => 0,
            Decimal::Finite(_) => 1,
            Decimal::Infinity => 2,
            Decimal::NaN => 3,
        }
    }
}

/// PostgreSQL's `select_div_scale`: enough digits for 16 significant digits
/// of the quotient, estimated from the leading base-10000 digits as
/// PostgreSQL stores them, and never fewer than either input's scale.
fn division_scale(dividend: &BigDecimal, divisor: &BigDecimal) -> i64 {
    let (dividend_weight, dividend_lead) = leading_unit(dividend);
    let (divisor_weight, divisor_lead) = leading_unit(divisor);
    let mut quotient_weight = dividend_weight - divisor_weight;
    if dividend_lead <= divisor_lead {
        quotient_weight -= 1;
    }
    (MIN_SIGNIFICANT_DIGITS - quotient_weight * DIGITS_PER_UNIT)
        .max(Decimal::scale(dividend))
        .max(Decimal::scale(divisor))
        .clamp(0, MAX_DIVISION_SCALE)
}

/// The weight (power of 10000) and value of a number's leading nonzero
/// base-10000 digit; (0, 0) for zero.
fn leading_unit(value: &BigDecimal) -> (i64, u32) {
    if value.is_zero() {
        return (0, 0);
    }
    let (unscaled, scale) = value.as_bigint_and_exponent();
    let digits = unscaled.magnitude().to_string();
    let magnitude = digits.len() as i64 - 1 - scale;
    let weight = magnitude.div_euclid(DIGITS_PER_UNIT);
    let lead_len = (magnitude - weight * DIGITS_PER_UNIT + 1) as usize;
    let lead: String = digits
        .chars()
        .chain(std::iter::repeat('0'))
        .take(lead_len)
        .collect();
    (weight, lead.parse().unwrap_or(0))
}

/// `dividend / divisor` at `scale` decimal places, rounded half away from zero,
/// computed on integers so that no digit is lost whatever the magnitudes.
fn divide_rounded(dividend: &BigDecimal, divisor: &BigDecimal, scale: i64) -> BigDecimal {
    let (dividend_digits, dividend_scale) = dividend.as_bigint_and_exponent();
    let (divisor_digits, divisor_scale) = divisor.as_bigint_and_exponent();
    let shift = scale + divisor_scale - dividend_scale;
    let (numerator, denominator) = if shift >= 0 {
        (dividend_digits * ten_to(shift), divisor_digits)
    } else {
        (dividend_digits, divisor_digits * ten_to(-shift))
    };
    BigDecimal::new(divide_half_away(&numerator, &denominator), scale)
}

fn divide_half_away(numerator: &BigInt, denominator: &BigInt) -> BigInt {
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    if remainder.abs() * 2 < denominator.abs() {
        return quotient;
    }
    if numerator.is_negative() != denominator.is_negative() {
        quotient - 1
    } else {
        quotient + 1
    }
}

fn finite_remainder(dividend: &BigDecimal, divisor: &BigDecimal) -> BigDecimal {
    let scale = Decimal::scale(dividend).max(Decimal::scale(divisor));
    let (dividend_digits, _) = dividend.with_scale(scale).into_bigint_and_exponent();
    let (divisor_digits, _) = divisor.with_scale(scale).into_bigint_and_exponent();
    BigDecimal::new(dividend_digits % divisor_digits, scale)
}

fn ten_to(power: i64) -> BigInt {
    BigInt::from(10u8).pow(power.clamp(0, i64::from(u32::MAX)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Decimal {
        Decimal::parse(text).unwrap_or_else(|| panic!("bad test literal {text}"))
    }

    fn text(result: Result<Decimal, Fault>) -> String {
        result
            .map(|d| d.to_text())
            .unwrap_or_else(|f| format!("{f:?}"))
    }

    #[test]
    fn parses_postgres_text_and_rejects_everything_else() {
        assert_eq!(dec("12.50").to_text(), "12.50");
        assert_eq!(dec(" -3 ").to_text(), "-3");
        assert_eq!(dec("1.5e3").to_text(), "1500");
        assert_eq!(dec("1e-3").to_text(), "0.001");
        assert_eq!(dec(".5").to_text(), "0.5");
        assert_eq!(dec("NaN"), Decimal::NaN);
        assert_eq!(dec("-Infinity"), Decimal::NegativeInfinity);
        for bad in [
            "", "-", ".", "1.2.3", "abc", "1e", "1e999999", "0x10", "1_000", "--1", "-NaN",
        ] {
            assert_eq!(Decimal::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn addition_is_exact_and_keeps_the_larger_scale() {
        assert_eq!(text(dec("0.1").add(&dec("0.2"))), "0.3");
        assert_eq!(text(dec("1.50").add(&dec("2"))), "3.50");
        assert_eq!(text(dec("1.5").subtract(&dec("1.5"))), "0.0");
    }

    #[test]
    fn multiplication_adds_scales() {
        assert_eq!(text(dec("2.50").multiply(&dec("2"))), "5.00");
        assert_eq!(text(dec("1.5").multiply(&dec("0.25"))), "0.375");
        assert_eq!(text(dec("-0.10").multiply(&dec("0.0"))), "0.000");
    }

    #[test]
    fn division_uses_postgres_scale() {
        assert_eq!(text(dec("1").divide(&dec("3"))), "0.33333333333333333333");
        assert_eq!(text(dec("10").divide(&dec("4"))), "2.5000000000000000");
        assert_eq!(text(dec("1").divide(&dec("1"))), "1.00000000000000000000");
        assert_eq!(text(dec("2").divide(&dec("3"))), "0.66666666666666666667");
        assert_eq!(text(dec("-2").divide(&dec("3"))), "-0.66666666666666666667");
        assert_eq!(
            text(dec("123456789").divide(&dec("1000"))),
            "123456.789000000000"
        );
        assert_eq!(
            text(dec("1.000000000000000000001").divide(&dec("1"))),
            "1.000000000000000000001"
        );
    }

    #[test]
    fn division_by_zero_is_an_error() {
        assert_eq!(dec("1").divide(&dec("0.00")), Err(Fault::DivisionByZero));
        assert_eq!(dec("1").remainder(&dec("0")), Err(Fault::DivisionByZero));
        assert_eq!(
            dec("Infinity").divide(&dec("0")),
            Err(Fault::DivisionByZero)
        );
        assert_eq!(dec("NaN").divide(&dec("0")), Ok(Decimal::NaN));
    }

    #[test]
    fn remainder_truncates_toward_zero() {
        assert_eq!(text(dec("7.5").remainder(&dec("2"))), "1.5");
        assert_eq!(text(dec("-7").remainder(&dec("2"))), "-1");
        assert_eq!(text(dec("7").remainder(&dec("-2.00"))), "1.00");
    }

    #[test]
    fn special_values_follow_postgres() {
        assert_eq!(text(dec("Infinity").add(&dec("-Infinity"))), "NaN");
        assert_eq!(text(dec("Infinity").add(&dec("5"))), "Infinity");
        assert_eq!(text(dec("5").subtract(&dec("Infinity"))), "-Infinity");
        assert_eq!(text(dec("-Infinity").multiply(&dec("-2"))), "Infinity");
        assert_eq!(text(dec("Infinity").multiply(&dec("0"))), "NaN");
        assert_eq!(text(dec("5").divide(&dec("Infinity"))), "0");
        assert_eq!(text(dec("NaN").add(&dec("1"))), "NaN");
        assert_eq!(text(dec("5").remainder(&dec("Infinity"))), "5");
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(text(dec("2.5").round(0)), "3");
        assert_eq!(text(dec("-2.5").round(0)), "-3");
        assert_eq!(text(dec("12.345").round(2)), "12.35");
        assert_eq!(text(dec("1234.5").round(-2)), "1200");
        assert_eq!(text(dec("1.5").round(3)), "1.500");
        assert_eq!(text(dec("1").round(i64::MIN)), "0");
        assert_eq!(dec("2.5").to_i64_rounded(), Some(3));
        assert_eq!(dec("1e30").to_i64_rounded(), None);
    }

    #[test]
    fn ordering_puts_nan_last_and_ignores_scale() {
        assert_eq!(dec("1.0").total_cmp(&dec("1.00")), Ordering::Equal);
        assert_eq!(dec("NaN").total_cmp(&dec("Infinity")), Ordering::Greater);
        assert_eq!(dec("NaN").total_cmp(&dec("NaN")), Ordering::Equal);
        assert_eq!(dec("-Infinity").total_cmp(&dec("-1e300")), Ordering::Less);
    }

    #[test]
    fn results_beyond_postgres_range_are_errors() {
        let huge = dec("1e1000");
        let mut product = Ok(huge.clone());
        for _ in 0..200 {
            product = product.and_then(|p| p.multiply(&huge));
        }
        assert_eq!(product, Err(Fault::OutOfRange("numeric")));
    }

    #[test]
    fn floats_convert_both_ways() {
        assert_eq!(Decimal::from_f64(0.1).to_text(), "0.1");
        assert_eq!(
            Decimal::from_f64(f64::NEG_INFINITY),
            Decimal::NegativeInfinity
        );
        assert_eq!(dec("2.5").to_f64(), 2.5);
        assert!(dec("NaN").to_f64().is_nan());
    }
}
