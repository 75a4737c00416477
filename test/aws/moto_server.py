"""moto_server with one repair, for kubebake's tests.

moto 5.2.1 stores the UserData of CreateLaunchTemplateVersion as a plain string (CreateLaunchTemplate
decodes it properly), and an Auto Scaling group that launches from such a version then fails an
assertion with HTTP 500. AWS has no such limit, so the harness wraps the string the way moto itself does.
"""
import sys

from moto.core.types import Base64EncodedString
from moto.ec2.models import launch_templates

_original = launch_templates.LaunchTemplateVersion.user_data.fget


def _user_data(self):
    value = self.data.get("UserData")
    if isinstance(value, str):
        self.data["UserData"] = Base64EncodedString(value)
    return _original(self)


launch_templates.LaunchTemplateVersion.user_data = property(_user_data)

from moto.server import main  # noqa: E402  (after the repair)

sys.exit(main(sys.argv[1:]))
