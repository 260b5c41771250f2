"""Print a user's API token, creating the user (and token) when asked."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Print the API token of USERNAME (with --create, make the user first if missing)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--create", action="store_true", help="create the user if it does not exist")
        parser.add_argument("--password", help="set this password (for the web pages' login)")
        parser.add_argument("--rotate", action="store_true", help="replace an existing token with a new one")

    def handle(self, username, create, password, rotate, **options):
        users = get_user_model()
        user = users.objects.filter(username=username).first()
        if user is None:
            if not create:
                raise CommandError(f"no user {username!r}; pass --create to make one")
            user = users.objects.create_user(username=username)
            if not password:
                user.set_unusable_password()
        if password:
            user.set_password(password)
        user.save()
        if rotate:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
