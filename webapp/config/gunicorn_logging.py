"""gunicorn's access log, with the signatures of step picture links blanked out.

A step picture link's ``signature=`` is a credential for that picture until it expires
(webapp/recognition/step_links.py); the rest of a query (``?wait=``, ``?status=``) is worth
keeping for debugging, so only the signature's value goes.
"""
from __future__ import annotations

import re

from gunicorn.glogging import Logger

_SIGNATURE = re.compile(r"(signature=)[^&\s]*")


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "q", "f"):  # the request line, the query, the referrer
            if isinstance(atoms.get(key), str):
                atoms[key] = _SIGNATURE.sub(r"\1…", atoms[key])
        return atoms
