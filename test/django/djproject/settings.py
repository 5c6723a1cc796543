"""
Settings of the safe_backfill demo project.

The database comes from the libpq environment variables (PGHOST, PGPORT,
PGUSER, PGPASSWORD, PGDATABASE), so the same project runs against a local
server, a container or the test's throwaway cluster.
"""
import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BASE_DIR.parent.parent

# The reusable migration operations live in the repository's contrib/django.
sys.path.insert(0, str(REPO_ROOT / "contrib" / "django"))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "safe-backfill-demo-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "demoapp",
    "opsdemo",
]
MIDDLEWARE = []
ROOT_URLCONF = "djproject.urls"
TEMPLATES = []
WSGI_APPLICATION = None

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PGDATABASE", "safe_backfill_demo"),
        "USER": os.environ.get("PGUSER", ""),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ.get("PGHOST", ""),
        "PORT": os.environ.get("PGPORT", ""),
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

# Rows per committed batch of the backfill migrations (demoapp 0003, opsdemo
# 0003).  10000 suits most tables; the test uses 1000 to get many batches.
SAFE_BACKFILL_BATCH_SIZE = int(os.environ.get("SAFE_BACKFILL_BATCH_SIZE", "10000"))

# Test-only switches: make the backfill migrations atomic, to show the error
# you get when atomic = False is forgotten.  Never set them otherwise.
DEMOAPP_FORCE_ATOMIC = os.environ.get("DEMOAPP_FORCE_ATOMIC") == "1"
OPSDEMO_FORCE_ATOMIC = os.environ.get("OPSDEMO_FORCE_ATOMIC") == "1"
