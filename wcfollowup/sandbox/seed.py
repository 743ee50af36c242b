"""The seeded shop "Toko Sari": products, customers and a few weeks of order history.

Names and prices are chosen to look like a real Indonesian/Malaysian shop, so templates, currency
formatting and UTF-8 handling are exercised by ordinary demo data: an emoji, an accent, a Malay
patronymic, a guest order with ``customer_id`` 0. Everything is derived from fixed seeds, so two
sandboxes built at the same clock time hold identical stores.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

STORE_NAME = "Toko Sari"
STORE_CURRENCY = "IDR"
WC_VERSION = "6.6.0"
WC_LEGACY_VERSION = "5.7.0"
WP_VERSION = "6.1.9"
PHP_VERSION = "8.2.36"

CURRENCY_SYMBOLS = {"IDR": "Rp", "MYR": "RM", "USD": "$", "SGD": "$"}


@dataclass(frozen=True, slots=True)
class Category:
    id: int
    name: str
    slug: str


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    name: str
    slug: str
    sku: str
    category: Category
    image_id: int
    # Prices in cents of each currency the shop sells in (a multi-currency plugin's fixed prices).
    prices: dict[str, int]
    short_description: str


@dataclass(frozen=True, slots=True)
class Customer:
    key: str
    id: int  # 0 for a guest
    first_name: str
    last_name: str
    email: str
    phone: str
    address_1: str
    city: str
    state: str
    postcode: str
    country: str
    currency: str
    payment_method: str
    payment_method_title: str
    company: str = ""


BATIK = Category(21, "Batik", "batik")
SKINCARE = Category(22, "Perawatan Kulit", "perawatan-kulit")
COFFEE = Category(23, "Kopi Nusantara", "kopi-nusantara")
CATEGORIES = (BATIK, SKINCARE, COFFEE)

PRODUCTS: tuple[Product, ...] = (
    Product(
        11,
        "Batik Tulis Kawung 2m",
        "batik-tulis-kawung-2m",
        "BTK-KWG-200",
        BATIK,
        31,
        {"IDR": 45_000_000, "MYR": 13_500},
        "Hand-drawn kawung batik from Yogyakarta.",
    ),
    Product(
        12,
        "Kemeja Batik Cap Parang",
        "kemeja-batik-cap-parang",
        "BTK-PRG-KMJ",
        BATIK,
        32,
        {"IDR": 27_500_000, "MYR": 8_500},
        "Stamped parang batik shirt, cotton.",
    ),
    Product(
        13,
        "Serum Kunyit Brightening 30ml",
        "serum-kunyit-brightening-30ml",
        "SKN-KNY-30",
        SKINCARE,
        33,
        {"IDR": 12_900_000, "MYR": 3_990},
        "Turmeric serum for dull skin.",
    ),
    Product(
        14,
        "Lulur Bali Body Scrub 200g",
        "lulur-bali-body-scrub-200g",
        "SKN-LLR-200",
        SKINCARE,
        34,
        {"IDR": 8_900_000, "MYR": 2_750},
        "Traditional Balinese body scrub.",
    ),
    Product(
        15,
        "Kopi Gayo Arabika 250g",
        "kopi-gayo-arabika-250g",
        "KOP-GAYO-250",
        COFFEE,
        35,
        {"IDR": 9_500_000, "MYR": 2_900},
        "Single-origin arabica from Aceh Gayo.",
    ),
    Product(
        16,
        "Kopi Luwak Kintamani 100g",
        "kopi-luwak-kintamani-100g",
        "KOP-LWK-100",
        COFFEE,
        36,
        {"IDR": 35_000_000, "MYR": 10_500},
        "Rare civet coffee from Bali.",
    ),
)
PRODUCTS_BY_ID = {product.id: product for product in PRODUCTS}

SHIPPING = {
    "IDR": ("JNE REG", 2_000_000),
    "MYR": ("Pos Laju", 800),
}

_ID_PAY = ("bacs", "Transfer Bank")
_MY_PAY = ("ipay88", "FPX Online Banking")

CUSTOMERS: tuple[Customer, ...] = (
    Customer(
        "siti",
        2,
        "Siti",
        "Rahmawati",
        "siti.rahmawati@example.test",
        "+62 812 3456 7890",
        "Jl. Malioboro No. 52",
        "Yogyakarta",
        "YO",
        "55213",
        "ID",
        "IDR",
        *_ID_PAY,
    ),
    Customer(
        "nurul",
        3,
        "Nurul Aisyah",
        "binti Ahmad",
        "nurul.aisyah@example.test",
        "+60 12-345 6789",
        "No. 8, Jalan Ampang",
        "Kuala Lumpur",
        "KUL",
        "50450",
        "MY",
        "MYR",
        *_MY_PAY,
    ),
    Customer(
        "tan",
        4,
        "Tan",
        "Wei Ming",
        "weiming.tan@example.test",
        "+60 16-222 3344",
        "23 Lebuh Armenian",
        "George Town",
        "PNG",
        "10200",
        "MY",
        "MYR",
        *_MY_PAY,
    ),
    Customer(
        "dewi",
        5,
        "Dewi",
        "Lestari",
        "dewi.lestari@example.test",
        "+62 811 2233 4455",
        "Jl. Braga No. 7",
        "Bandung",
        "JB",
        "40111",
        "ID",
        "IDR",
        *_ID_PAY,
    ),
    Customer(
        "putu",
        6,
        "Putu Ayu 🌺",
        "Saraswati",
        "putu.ayu@example.test",
        "+62 813 9988 7766",
        "Jl. Raya Ubud No. 18",
        "Gianyar",
        "BA",
        "80571",
        "ID",
        "IDR",
        "cod",
        "Bayar di Tempat (COD)",
    ),
    Customer(
        "andre",
        7,
        "André",
        "Wijaya",
        "andre.wijaya@example.test",
        "+62 815 1111 2222",
        "Jl. Kemang Raya 10",
        "Jakarta Selatan",
        "JK",
        "12730",
        "ID",
        "IDR",
        *_ID_PAY,
        company="PT Kopi Kemang",
    ),
    Customer(
        "budi_guest",
        0,
        "Budi",
        "Santoso",
        "budi.santoso@example.test",
        "+62 857 3030 4040",
        "Jl. Tunjungan 45",
        "Surabaya",
        "JI",
        "60275",
        "ID",
        "IDR",
        *_ID_PAY,
    ),
    Customer(
        "farah_guest",
        0,
        "Farah",
        "Lim",
        "farah.lim@example.test",
        "+60 19-876 5432",
        "12 Jalan Sultan Ismail",
        "Kuala Lumpur",
        "KUL",
        "50250",
        "MY",
        "MYR",
        *_MY_PAY,
    ),
)
CUSTOMERS_BY_KEY = {customer.key: customer for customer in CUSTOMERS}

# (customer key, [(product id, qty)], status, days before the clock, extra) for the history.
# Modification happens ``modified_hours`` after creation; refunds carry an amount in cents or None.
SEED_ORDERS: tuple[tuple[str, tuple[tuple[int, int], ...], str, float, float], ...] = (
    ("siti", ((11, 1), (15, 2)), "completed", 21.0, 30.0),
    ("nurul", ((13, 2),), "completed", 20.2, 48.0),
    ("tan", ((16, 1),), "completed", 19.5, 26.0),
    ("dewi", ((14, 1), (13, 1)), "refunded", 18.7, 50.0),
    ("putu", ((12, 1),), "completed", 17.9, 40.0),
    ("budi_guest", ((15, 3),), "completed", 16.4, 28.0),
    ("andre", ((16, 2), (15, 2)), "completed", 15.1, 36.0),
    ("siti", ((13, 1),), "cancelled", 14.3, 5.0),
    ("farah_guest", ((14, 2),), "completed", 13.0, 44.0),
    ("nurul", ((11, 1),), "completed", 11.8, 30.0),
    ("tan", ((15, 1), (14, 1)), "failed", 10.6, 0.5),
    ("dewi", ((12, 2),), "completed", 9.2, 26.0),
    ("putu", ((13, 1), (14, 1)), "on-hold", 7.7, 2.0),
    ("andre", ((11, 1),), "refunded", 6.5, 20.0),
    ("budi_guest", ((16, 1),), "cancelled", 5.1, 3.0),
    ("siti", ((15, 1),), "processing", 3.9, 4.0),
    ("farah_guest", ((13, 1),), "pending", 2.6, 0.2),
    ("nurul", ((12, 1), (14, 1)), "processing", 1.8, 3.0),
    ("tan", ((16, 1),), "processing", 0.9, 2.0),
    ("dewi", ((15, 2),), "pending", 0.4, 0.1),
)
# Index into SEED_ORDERS of the completed order that also has a partial refund (like order 15).
PARTIAL_REFUND_SEED = 6

_FIRST_NAMES = (
    "Agus",
    "Rina",
    "Wayan",
    "Intan",
    "Hafiz",
    "Mei Ling",
    "Rizky",
    "Aminah",
    "Kevin",
    "Sari",
    "Ahmad",
    "Lestari",
    "Yusuf",
    "Nadia",
    "Bayu",
    "Zulaikha",
    "Darren",
    "Citra",
    "Farid",
    "Ayu",
)
_LAST_NAMES = (
    "Pratama",
    "Hidayat",
    "Wibowo",
    "Halim",
    "Rahman",
    "Chong",
    "Saputra",
    "Kusuma",
    "Ismail",
    "Nugroho",
    "Lim",
    "Siregar",
    "Abdullah",
    "Tanjung",
    "Gunawan",
    "Ong",
    "Harahap",
    "Yusof",
)
_ID_CITIES = (
    ("Jakarta Pusat", "JK", "10110"),
    ("Semarang", "JT", "50132"),
    ("Medan", "SU", "20111"),
    ("Makassar", "SN", "90111"),
    ("Malang", "JI", "65111"),
)
_MY_CITIES = (
    ("Petaling Jaya", "SGR", "46000"),
    ("Johor Bahru", "JHR", "80000"),
    ("Ipoh", "PRK", "30000"),
    ("Kota Kinabalu", "SBH", "88000"),
)

SYNTHETIC_POOL = 5000


def _pick(seq_len: int, salt: str, number: int) -> int:
    digest = hashlib.blake2b(f"{salt}:{number}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % seq_len


def synthetic_customer(number: int) -> Customer:
    """A guest shopper derived from a number, so bulk orders need no stored customer data."""
    first = _FIRST_NAMES[_pick(len(_FIRST_NAMES), "first", number)]
    last = _LAST_NAMES[_pick(len(_LAST_NAMES), "last", number)]
    malaysian = _pick(4, "country", number) == 0
    if malaysian:
        city, state, postcode = _MY_CITIES[_pick(len(_MY_CITIES), "city", number)]
        country, currency, pay = "MY", "MYR", _MY_PAY
        phone = f"+60 1{number % 10}-{number % 1000:03d} {number % 10000:04d}"
    else:
        city, state, postcode = _ID_CITIES[_pick(len(_ID_CITIES), "city", number)]
        country, currency, pay = "ID", "IDR", _ID_PAY
        phone = f"+62 81{number % 10} {number % 10000:04d} {number % 7919:04d}"
    local = f"{first}.{last}".lower().replace(" ", "")
    return Customer(
        key=f"shopper{number}",
        id=0,
        first_name=first,
        last_name=last,
        email=f"{local}{number}@example.test",
        phone=phone,
        address_1=f"Jl. Contoh No. {number % 200 + 1}",
        city=city,
        state=state,
        postcode=postcode,
        country=country,
        currency=currency,
        payment_method=pay[0],
        payment_method_title=pay[1],
    )


def order_key(order_id: int) -> str:
    """Stable ``wc_order_…`` key, derived rather than stored to keep bulk orders small."""
    digest = hashlib.sha1(f"order-key:{order_id}".encode()).digest()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    value = int.from_bytes(digest, "big")
    chars = []
    for _ in range(13):
        value, index = divmod(value, len(alphabet))
        chars.append(alphabet[index])
    return "wc_order_" + "".join(chars)
