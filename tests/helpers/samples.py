"""Published API samples the parser tests read. No I/O."""

from __future__ import annotations

from typing import Any

V3_HOST: dict[str, Any] = {  # the API v3.4 host sample published in the rbltracker-php README
    "id": "HTee06c4fa7c23aa8a3a4e8d66922b0834",
    "host": "bad-url.com",
    "name": "bad-url.com",
    "type": "uribl",
    "parent": "",
    "status": "active",
    "rbl_profile": "RP15d4e891d784977cacbfcbb00c48f133",
    "contact_group": "CGd3dca251d33135e0a518d7c49b89dc61",
    "last_checked": "2016-11-07 21:01:33 EST",
    "first_listed": "2016-11-06 10:14:58 EST",
    "listed_period": "1 day 11:37:51",
    "listed": 1,
    "listed_count": 1,
    "listed_details": [
        {"host": "Google Safe Browsing", "website": "", "details": "Malware (Virus) on Windows"}
    ],
}
