"""The upload mix of bench/load.py sends bytes no other upload has (else every upload
after the first of each image is deduplicated and the mix measures no media work), and
the picture stays the same JPEG."""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image

from bench import load, seed


def test_each_upload_is_the_same_picture_in_bytes_of_its_own():
    jpeg = seed.make_jpeg(random.Random(3), 200_000)
    sent = [load.distinct(jpeg) for _ in range(50)]
    assert len({hashlib.sha256(s).digest() for s in sent}) == 50
    with Image.open(io.BytesIO(jpeg)) as original, Image.open(io.BytesIO(sent[0])) as copy:
        assert copy.format == "JPEG" and copy.tobytes() == original.tobytes()
