"""A collection's drawings in the form an upload is kept (`stored_form`: RGB PNG, bounded),
decoded in the web's upload threads or the CLI. TensorFlow-free: the web imports it."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import replace

from worker.core.collection import NewDesign, SharedMember
from worker.core.contract import SIDES
from worker.core.images import ImageRejected, stored_form

FORMS_KEPT = 8  # drawings' stored forms a collection keeps (StoredForms)


class StoredForms:
    """Drawings as an upload is kept (`stored_form`: RGB PNG, bounded), by content: the
    FORMS_KEPT used last are kept, so a drawing many rows name (a shared back) is decoded
    once. Shared by a request's upload threads."""

    def __init__(self, max_pixels: int):
        self.max_pixels = max_pixels
        self._kept: OrderedDict[bytes, bytes | ImageRejected] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, data: bytes) -> bytes:
        key = data.digest if isinstance(data, SharedMember) else hashlib.sha256(data).digest()
        with self._lock:
            form = self._kept.get(key)
            if form is not None:
                self._kept.move_to_end(key)
        if form is None:
            try:
                form = stored_form(data, self.max_pixels)[0]
            except ImageRejected as exc:  # kept without its frames: they hold the decode
                form = exc.with_traceback(None)
            with self._lock:
                self._kept[key] = form
                while len(self._kept) > FORMS_KEPT:
                    self._kept.popitem(last=False)
        if isinstance(form, ImageRejected):
            raise ImageRejected(form.reason, str(form))  # each row its own, not one traceback
        return form


def stored_design(design: NewDesign, forms: StoredForms) -> NewDesign:
    """The design with each side in its stored form, or with the row's error when a side is
    refused (not a JPEG or PNG, too many pixels...)."""
    if design.error:
        return design
    sides = {}
    for side in SIDES:
        data = getattr(design, side)
        if data == b"":  # not "not a JPEG or PNG": there is nothing in it
            return NewDesign(design.name, error=f"{side}: the file is empty")
        try:
            sides[side] = None if data is None else forms(data)
        except ImageRejected as exc:
            return NewDesign(design.name, error=f"{side}: {exc}")
    return replace(design, **sides)
