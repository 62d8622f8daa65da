"""Web addresses on the visitor's own machine or network (loopback, private, link-local, every
spelling a browser reads as one) are refused; public names that merely look local are accepted."""

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from tests.test_models import make_site

LOCAL = "Enter the address of a public site: this one leads to the visitor's own computer or network."
# Loopback, private, link-local, shared (CGNAT), "this network", unique-local and site-local.
LOCAL_V4 = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]
LOCAL_V6 = ["::1/128", "::/128", "fe80::/10", "fc00::/7", "fec0::/10"]
local_v4 = st.sampled_from([*LOCAL_V4, "0.0.0.0/8"]).flatmap(lambda net: st.ip_addresses(network=net))
local_hosts = st.one_of(
    local_v4.map(str),
    st.sampled_from(LOCAL_V6).flatmap(lambda net: st.ip_addresses(network=net)).map("[{}]".format),
    local_v4.map("[::ffff:{}]".format),  # IPv4-mapped: the IPv4 address is where it connects
    local_v4.map(lambda ip: f"[::ffff:{int(ip) >> 16:x}:{int(ip) & 0xFFFF:x}]"),  # the same in hex
    local_v4.map(lambda ip: f"[64:ff9b::{ip}]"),  # NAT64 translates to the IPv4 address
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True).flatmap(
        lambda label: st.sampled_from(
            ["localhost", f"{label}.localhost", f"{label}.local", f"{label}.internal"]
        )
    ),
)


@given(
    st.sampled_from(["http", "HTTPS"]),
    local_hosts,
    st.sampled_from(["", ":6868", ":443"]),
    st.sampled_from(["", "/", "/admin/"]),
)
def test_addresses_on_the_visitors_own_machine_or_network_are_refused(scheme, host, port, path):
    with pytest.raises(ValidationError) as error:
        make_site(url=f"{scheme}://{host}{port}{path}").clean_fields()
    assert error.value.message_dict["url"] == [LOCAL]


@pytest.mark.parametrize(
    "url",
    [
        "http://App.LOCALHOST./",  # a fully qualified name ends in a dot
        "http://\uff11\uff12\uff17.0.0.1/",  # full-width digits: NFKC makes them 127.0.0.1
        "http://localhost.localdomain:8000/",
        "http://printer.home.arpa/",
        "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
        "http://[2002:7f00:1::]/",  # 6to4 around 127.0.0.1
        "http://[::127.0.0.1]/",  # IPv4-compatible
        "http://224.0.0.1/",  # multicast
    ],
)
def test_other_spellings_of_a_local_address_are_refused(url):
    with pytest.raises(ValidationError) as error:
        make_site(url=url).clean_fields()
    assert error.value.message_dict["url"] == [LOCAL]


@pytest.mark.parametrize(
    "host", ["2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "127.1", "017700000001"]
)
def test_numeric_spellings_browsers_read_as_an_ip_address_are_not_web_addresses(host):
    # Browsers read each of these as 127.0.0.1; only the dotted form is an address here, and checked.
    with pytest.raises(ValidationError) as error:
        make_site(url=f"http://{host}/").clean_fields()
    assert error.value.message_dict["url"] == ["Enter a full web address starting with http:// or https://."]


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.216.34/",
        "http://[2606:4700:4700::1111]/",
        "http://[::ffff:93.184.216.34]/",
        "https://localhost.example.com/",
        "https://local.example/",
        "https://mylocalhost.com/",
    ],
)
def test_public_addresses_that_look_local_are_accepted(url):
    make_site(url=url).clean_fields()
