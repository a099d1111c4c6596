"""Money as the service stores it: integer minor units of an ISO 4217 currency, never floats.

`google.type.Money` carries whole `units` and `nanos` (billionths); the number of decimals a
currency really has (its ISO 4217 minor unit: 2 for CNY, 0 for JPY, 3 for KWD) decides how many
of those digits may be non-zero. Amounts are checked against that, then kept as a single
integer count of minor units (`BIGINT` columns), which sums exactly in SQL.

Only currencies with a minor unit are accepted: precious metals (XAU, XAG, ...), fund units and
testing codes (XDR, XTS, XXX, ...) have none in ISO 4217; a precious-metal holding is recorded
in the currency it is valued in.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

NANOS_PER_UNIT = 1_000_000_000
# The largest whole amount accepted anywhere: far above any balance, and small enough that its
# minor units (up to 4 decimals) fit a signed 64-bit integer.
MAX_UNITS = 100_000_000_000_000

# ISO 4217 active currency codes (list one, 2025) -> minor unit (decimal places).
_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF "
    "CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ "
    "GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD "
    "MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON "
    "RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS "
    "UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
)
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(_TWO.split(), 2), **dict.fromkeys(_ZERO.split(), 0),
    **dict.fromkeys(_THREE.split(), 3), **dict.fromkeys(_FOUR.split(), 4),
}


@dataclass(frozen=True, slots=True)
class Money:
    """An amount as google.type.Money has it: `units` and `nanos` of one sign, |nanos| < 10^9."""

    currency_code: str
    units: int = 0
    nanos: int = 0

    @property
    def is_negative(self) -> bool:
        return self.units < 0 or self.nanos < 0

    @property
    def is_zero(self) -> bool:
        return self.units == 0 and self.nanos == 0

    def as_decimal(self) -> Decimal:
        return Decimal(self.units) + Decimal(self.nanos).scaleb(-9)


def is_currency(code: str) -> bool:
    return code in MINOR_UNITS


def problem(money: Money) -> str | None:
    """Why `money` is not a usable amount of its currency, or None when it is."""
    exponent = MINOR_UNITS.get(money.currency_code)
    if exponent is None:
        return "currency_code must be an ISO 4217 currency code with a minor unit, e.g. CNY"
    if not -NANOS_PER_UNIT < money.nanos < NANOS_PER_UNIT:
        return "nanos must be between -999,999,999 and 999,999,999"
    if (money.units > 0 and money.nanos < 0) or (money.units < 0 and money.nanos > 0):
        return "units and nanos must have the same sign"
    if abs(money.units) > MAX_UNITS:
        return f"must be at most {MAX_UNITS:,} in absolute value"
    if money.nanos % 10 ** (9 - exponent):
        return f"must be in whole minor units of {money.currency_code} ({exponent} decimal places)"
    return None


def to_minor(money: Money) -> int:
    """The amount in minor units (fen for CNY); `problem(money)` must be None."""
    exponent = MINOR_UNITS[money.currency_code]
    fraction = abs(money.nanos) // 10 ** (9 - exponent)
    return money.units * 10**exponent + (-fraction if money.nanos < 0 else fraction)


def from_minor(currency_code: str, minor: int) -> Money:
    exponent = MINOR_UNITS[currency_code]
    negative = minor < 0
    units, rest = divmod(abs(minor), 10**exponent)
    nanos = rest * 10 ** (9 - exponent)
    return Money(currency_code, -units if negative else units, -nanos if negative else nanos)


def convert(money: Money, rate: Decimal, to_currency: str) -> Money:
    """`money` times `rate`, rounded half-even to whole minor units of `to_currency`."""
    exponent = MINOR_UNITS[to_currency]
    minor = (money.as_decimal() * rate).scaleb(exponent).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return from_minor(to_currency, int(minor))
