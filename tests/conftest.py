import pytest
from django.core.management import call_command


@pytest.fixture(scope="session", autouse=True)
def collected_static():
    """Collect static files once, as the image build does (the container's entrypoint only publishes
    what the build collected): templates need the manifest of hashed names
    (ManifestStaticFilesStorage) to render."""
    call_command("collectstatic", "--noinput", verbosity=0)
