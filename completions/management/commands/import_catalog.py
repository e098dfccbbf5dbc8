from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from completions.catalog import CatalogError, catalog_import, catalog_load


class Command(BaseCommand):
    help = "Create or update providers, models, routes and prices from a JSON or YAML catalog file."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path)

    def handle(self, *args, **options) -> None:
        try:
            result = catalog_import(catalog_load(options["path"]))
        except CatalogError as exc:
            raise CommandError(str(exc).splitlines()[0])
        self.stdout.write(result.summary())
