"""The guide's chapters, listed once: the server parts (1-4, what ``mailkit check`` grades and a class works
through) and the chapters beside them (the upgrade), each with its title and notebook.

Everything that loops over parts (``mailkit check``'s report and the board, the workshop, the CLI's and the benches'
defaults) reads them here.

>>> SERVER_PARTS, DEFAULT_PARTS
((1, 2, 3, 4), '1,2,3,4')
>>> chapter(5).title, chapter(5).server_part
('the upgrade', False)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chapter:
    """One notebook of the guide: its number (the ``NN-`` of its file name and ``--parts``), title and file."""

    number: int
    title: str
    notebook: str
    #: A part of the server's setup (checked by ``mailkit check``), or a chapter beside them (the upgrade).
    server_part: bool = True


CHAPTERS = (
    Chapter(1, "Postfix", "01-postfix.ipynb"),
    Chapter(2, "Dovecot", "02-dovecot.ipynb"),
    Chapter(3, "your e-mails are spam", "03-spam-outbound.ipynb"),
    Chapter(4, "avoiding spam", "04-spam-inbound.ipynb"),
    Chapter(5, "the upgrade", "05-upgrade.ipynb", server_part=False),
)
SERVER_PARTS = tuple(c.number for c in CHAPTERS if c.server_part)
#: What ``--parts`` means when it is not given: the server parts, in order.
DEFAULT_PARTS = ",".join(map(str, SERVER_PARTS))


def chapter(number: int) -> Chapter:
    """The chapter numbered ``number``; a KeyError for a number the guide has not."""
    for found in CHAPTERS:
        if found.number == number:
            return found
    raise KeyError(number)
