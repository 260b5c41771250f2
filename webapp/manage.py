#!/usr/bin/env python
"""Django's command-line utility: `python webapp/manage.py <command>` from the repository root."""
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.config.settings.local")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
