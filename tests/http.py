"""Submitting searches through the Flask test client."""

from __future__ import annotations

import io


def post_pair(client, front: bytes | None, back: bytes | None, **fields):
    """POST /api/searches with the given sides (None: left out) and form fields."""
    data = {k: str(v) for k, v in fields.items()}
    if front is not None:
        data["front"] = (io.BytesIO(front), "front.png")
    if back is not None:
        data["back"] = (io.BytesIO(back), "back.png")
    return client.post("/api/searches", data=data, content_type="multipart/form-data")


def csv_text(response) -> str:
    """A CSV download's text (a Flask test response's), its byte-order mark checked (Excel
    reads a file without one in the machine's code page) and dropped."""
    data = response.get_data()
    assert data.startswith("\ufeff".encode()), data[:20]
    return data.decode("utf-8-sig")
