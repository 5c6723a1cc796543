from django.db import migrations, models


class Migration(migrations.Migration):
    """
    Add the column nullable and without a default: a catalog-only change,
    instant whatever the size of the table.
    """

    dependencies = [("demoapp", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="largeuser",
            name="status",
            field=models.CharField(blank=True, max_length=20, null=True),
        ),
        migrations.AddField(
            model_name="smalluser",
            name="status",
            field=models.CharField(blank=True, max_length=20, null=True),
        ),
    ]
