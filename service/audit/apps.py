from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "service.audit"
    label = "audit"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_login_failed

        from . import receivers

        user_login_failed.connect(receivers.login_failed, dispatch_uid="forget.audit.login_failed")
        user_locked_out.connect(receivers.locked_out, dispatch_uid="forget.audit.locked_out")
