import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("opsdemo", "0006_backfill_tag_color")]

    operations = [
        migrations.CreateModel(
            name="Person",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("first_name", models.CharField(max_length=50)),
                ("last_name", models.CharField(max_length=50, null=True)),
                ("email", models.CharField(db_column="eMail", max_length=100)),
                ("vip", models.BooleanField(default=False)),
                ("account", models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL,
                                              to="opsdemo.account")),
                ("email_lower", models.CharField(max_length=100, null=True)),
                ("display_name", models.CharField(max_length=200, null=True)),
            ],
            options={"db_table": "opsdemo_Person"},
        ),
    ]
