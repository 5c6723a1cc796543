from django.conf import settings
from django.db import migrations, models
from django.db.models import F, Q
from django.db.models.functions import Cast, Lower, Upper

from safe_backfill_ops import SafeUpdate

PRICE_IN_CENTS = Cast(F("price") * 100, output_field=models.IntegerField())


class Migration(migrations.Migration):
    # Required by SafeUpdate, which commits after every batch.
    # (OPSDEMO_FORCE_ATOMIC is a test-only switch showing the refusal.)
    atomic = settings.OPSDEMO_FORCE_ATOMIC

    dependencies = [("opsdemo", "0012_order")]

    operations = [
        # Currency codes in capitals, e-mails in lower case.  An updated row
        # no longer matches the where, so applying this again changes nothing.
        SafeUpdate("order",
                   set={"currency": Upper("currency"), "email": Lower("email")},
                   where=Q(currency__in=["eur", "usd"]) | ~Q(email=Lower("email")),
                   batch_size=settings.SAFE_BACKFILL_BATCH_SIZE),
        # price_cents computed from price where it is NULL or differs.
        SafeUpdate("order",
                   set={"price_cents": PRICE_IN_CENTS},
                   where=Q(price_cents__isnull=True) | ~Q(price_cents=PRICE_IN_CENTS),
                   batch_size=settings.SAFE_BACKFILL_BATCH_SIZE),
    ]
