//! Money is integer minor units plus an ISO 4217 currency code; never a
//! float. The order total is computed here, with checked arithmetic, by the
//! ingress (to refuse early) and by the order service (which decides).

/// The active ISO 4217 currency codes (funds and precious metals excluded).
const CURRENCIES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF", "BMD",
    "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP",
    "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP",
    "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD",
    "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN",
    "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB",
    "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL",
    "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VES", "VND",
    "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// Whether `code` is an active ISO 4217 currency (upper case, as sent).
pub fn is_currency(code: &str) -> bool {
    CURRENCIES.binary_search(&code).is_ok()
}

/// `quantity × unit_price` summed over `lines`, or `None` if it does not
/// fit in an `i64` of minor units.
pub fn checked_total(lines: impl IntoIterator<Item = (i64, i64)>) -> Option<i64> {
    lines.into_iter().try_fold(0i64, |sum, (quantity, unit_price)| quantity.checked_mul(unit_price)?.checked_add(sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_sorted_and_real() {
        assert!(CURRENCIES.windows(2).all(|w| w[0] < w[1]), "binary search needs a sorted list");
        assert!(is_currency("EUR") && is_currency("JPY") && is_currency("USD"));
        for bad in ["eur", "XXX", "XAU", "EU", "EURO", ""] {
            assert!(!is_currency(bad), "{bad}");
        }
    }

    #[test]
    fn totals_are_checked() {
        assert_eq!(checked_total([(2, 1250), (1, 99)]), Some(2599));
        assert_eq!(checked_total([]), Some(0));
        assert_eq!(checked_total([(2, i64::MAX / 2 + 1)]), None, "the product overflows");
        assert_eq!(checked_total([(1, i64::MAX), (1, 1)]), None, "the sum overflows");
    }
}
