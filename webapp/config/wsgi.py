import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from webapp.config.unread_body import DrainUnreadBody

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.config.settings.production")
application = DrainUnreadBody(get_wsgi_application(), limit_bytes=settings.MAX_REQUEST_BYTES)
