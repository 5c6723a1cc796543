from django.apps import AppConfig


class OpsdemoConfig(AppConfig):
    name = "opsdemo"
