from django.db import models


class SmallUser(models.Model):
    name = models.CharField(max_length=100)
    # Added nullable by 0002, backfilled by 0003, NOT NULL since 0004.
    status = models.CharField(max_length=20, default="active")

    class Meta:
        db_table = "small_user"


class LargeUser(models.Model):
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=20, default="active")

    class Meta:
        db_table = "large_user"
