from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("opsdemo", "0011_ticket_priority_not_null")]

    operations = [
        migrations.CreateModel(
            name="Order",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("currency", models.CharField(db_column="curCode", max_length=3)),
                ("email", models.CharField(max_length=100)),
                ("price", models.DecimalField(decimal_places=2, max_digits=10)),
                ("price_cents", models.IntegerField(null=True)),
                ("created_at", models.DateTimeField()),
            ],
            options={"db_table": "opsdemo_Order"},
        ),
    ]
