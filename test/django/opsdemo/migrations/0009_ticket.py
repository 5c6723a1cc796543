from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("opsdemo", "0008_backfill_person")]

    operations = [
        migrations.CreateModel(
            name="Ticket",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("title", models.CharField(max_length=100)),
                ("priority", models.IntegerField(null=True)),
            ],
        ),
    ]
