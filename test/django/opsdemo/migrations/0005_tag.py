from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("opsdemo", "0004_account_plan_not_null")]

    operations = [
        migrations.CreateModel(
            name="Tag",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
                ("color", models.CharField(max_length=10, null=True)),
            ],
        ),
    ]
