

def test_a_short_policy_id_cuts_digests_and_keeps_names_whole():
    from edgesplit.policies_lite import short_policy_id

    digest = "dbf00f990cfcc95da35336b94041d0da0fe1ddec3529168044b1835a1b0aed37"
    assert short_policy_id(digest) == "dbf00f990cfc"
    assert short_policy_id("edgeml-tl:" + digest) == "edgeml-tl:dbf00f990cfc"
    assert short_policy_id("static:neurosurgeon (cut 0)") == "static:neurosurgeon (cut 0)"
    assert short_policy_id("static:one threshold") == "static:one threshold"
