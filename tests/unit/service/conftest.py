import pytest
import XenAPI



@pytest.fixture
def xenapi(served):
    _engine, url, _unix = served
    session = XenAPI.Session(url)
    session.xenapi.login_with_password("root", "", "1.0", "service-tests")
    return session.xenapi
