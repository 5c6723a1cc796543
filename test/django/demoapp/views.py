from django.http import JsonResponse

from .models import LargeUser


def list_large(request):
    """The first 20 users by id: what a page of the application reads."""
    users = list(LargeUser.objects.order_by("id").values("id", "name", "status")[:20])
    return JsonResponse({"users": users})
