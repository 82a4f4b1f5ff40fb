"""Fields a search's form held the wrong way, said so a person can mend the request: a
drawing sent as text (curl's -F without the @) or an option sent as a file. Either would
otherwise be dropped without a word: the search would run by one side, or with a default."""

from __future__ import annotations

from werkzeug.datastructures import FileStorage, ImmutableMultiDict

from web.errors import RequestRefused
from worker.core.contract import SIDES

OPTION_FIELDS = ("k", "front_weight", "front_box", "back_box", "sides", "filter")
ONE_DRAWING = "; upload one {name} drawing"  # a side's drawing given twice


def refuse_repeated(fields: ImmutableMultiDict, names, advice: str = "") -> None:
    """400 `invalid_<name>` for a field given more than once (which one was meant?); `advice`
    follows the message, `{name}` filled in."""
    for name in names:
        if len(fields.getlist(name)) > 1:
            raise RequestRefused(400, f"invalid_{name}", f"{name} was given more than once"
                                 + advice.format(name=name))


def sent(upload: FileStorage | None) -> bool:
    """Was a file sent in this part? A named one was (even empty: then refused as empty), and
    a part without a name was if it holds bytes: a form's file input left empty sends a
    nameless empty part, but a client may send a drawing without a name, and werkzeug then
    gives no length, so the stream is peeked."""
    if upload is None:
        return False
    if upload.filename or upload.content_length:
        return True
    start = upload.stream.tell()
    held = upload.stream.read(1)
    upload.stream.seek(start)
    return bool(held)


def what_came(files: ImmutableMultiDict, form: ImmutableMultiDict) -> str:
    """What the form held instead of the drawings (appended to `missing_images`)."""
    as_text = [side for side in SIDES if side in form]
    if as_text:
        return (f"; {' and '.join(as_text)} came as a text field, not a file (curl: "
                f"-F {as_text[0]}=@drawing.png, with the @)")
    others = sorted(name for name in files if name not in SIDES)
    if others:
        return (f"; the files came as {', '.join(repr(n[:40]) for n in others[:3])}: name the "
                "fields front and back")
    return ""


def refuse_options_as_files(files: ImmutableMultiDict) -> None:
    """400 `invalid_<field>` for an option that came as a file."""
    for field in OPTION_FIELDS:
        if field in files:
            raise RequestRefused(400, f"invalid_{field}", f"{field} came as a file, not a text "
                                 f"field (curl: -F {field}=value, without the @)")


def refuse_drawing_as_text(form: ImmutableMultiDict, uploaded: set[str]) -> None:
    """400 `invalid_<side>` for a side that came as a non-empty text field beside an uploaded
    other side (with no drawing at all, `missing_images` says the same)."""
    for side in SIDES:
        if side not in uploaded and form.get(side, "").strip():
            raise RequestRefused(400, f"invalid_{side}", f"{side} came as a text field, not a "
                                 f"file (curl: -F {side}=@drawing.png, with the @); upload the "
                                 f"{side} drawing, or leave the field out to search by the "
                                 "other side alone")
