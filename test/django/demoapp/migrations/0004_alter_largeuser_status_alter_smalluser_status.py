from django.db import migrations, models


class Migration(migrations.Migration):
    """
    Make status NOT NULL without a table scan under ACCESS EXCLUSIVE.

    Django's own AlterField(null=False) would run ALTER COLUMN ... SET NOT
    NULL, which reads the whole table while holding ACCESS EXCLUSIVE (and,
    with a default, an UPDATE of every NULL row first).  Instead the database
    side is CALL safe_set_not_null: CHECK (status IS NOT NULL) NOT VALID,
    VALIDATE (no exclusive lock), then SET NOT NULL, which PostgreSQL proves
    from the valid check without scanning, then the check is dropped.  The
    state side tells Django the field is now null=False.

    atomic = False: safe_set_not_null commits between its steps.
    Reverse: DROP NOT NULL, a catalog-only change.
    """

    atomic = False

    dependencies = [("demoapp", "0003_backfill_status_field")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql="CALL safe_set_not_null(tbl => 'small_user', col => 'status')",
                    reverse_sql="ALTER TABLE small_user ALTER COLUMN status DROP NOT NULL",
                ),
                migrations.RunSQL(
                    sql="CALL safe_set_not_null(tbl => 'large_user', col => 'status')",
                    reverse_sql="ALTER TABLE large_user ALTER COLUMN status DROP NOT NULL",
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="largeuser",
                    name="status",
                    field=models.CharField(default="active", max_length=20),
                ),
                migrations.AlterField(
                    model_name="smalluser",
                    name="status",
                    field=models.CharField(default="active", max_length=20),
                ),
            ],
        ),
    ]
