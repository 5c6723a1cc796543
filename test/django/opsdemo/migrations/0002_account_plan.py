from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("opsdemo", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="account",
            name="plan",
            field=models.CharField(db_column="planCode", max_length=20, null=True),
        ),
    ]
