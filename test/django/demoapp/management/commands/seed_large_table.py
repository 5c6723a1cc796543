from django.core.management.base import BaseCommand
from django.db import connection


class Command(BaseCommand):
    help = ("Empty small_user and large_user, then insert 10 small users and "
            "--large-count large users with one INSERT ... SELECT generate_series.")

    def add_arguments(self, parser):
        parser.add_argument("--large-count", type=int, default=1000000)

    def handle(self, *args, large_count, **options):
        with connection.cursor() as cursor:
            columns = {c.name: c for c in connection.introspection.get_table_description(cursor, "large_user")}
            # Before 0004 status is nullable and stays NULL: filling it is the
            # backfill's job.  Once it is NOT NULL, seed it with a value.
            with_status = "status" in columns and not columns["status"].null_ok
            cursor.execute("TRUNCATE small_user, large_user RESTART IDENTITY")
            for table, count in (("small_user", 10), ("large_user", large_count)):
                if with_status:
                    cursor.execute(
                        "INSERT INTO {} (name, status) SELECT 'user ' || g, 'active' "
                        "FROM generate_series(1, %s) AS g".format(connection.ops.quote_name(table)),
                        [count])
                else:
                    cursor.execute(
                        "INSERT INTO {} (name) SELECT 'user ' || g "
                        "FROM generate_series(1, %s) AS g".format(connection.ops.quote_name(table)),
                        [count])
            # Fresh statistics: the planner and the backfill's progress estimate use them.
            cursor.execute("ANALYZE small_user, large_user")
        self.stdout.write("Seeded 10 small_user rows and %d large_user rows" % large_count)
