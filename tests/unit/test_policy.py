"""An Enterprise Grid organisation's policy holds its workspaces: a workspace only tightens it."""

from __future__ import annotations

from lumabot.jobs.policy import Limits, Policy

LIMITS = Limits(max_queued_per_user=5, user_daily_images=None, daily_budget_usd=None, monthly_budget_usd=None)


def test_a_workspace_tightens_but_never_loosens_its_organisations_policy():
    org = Policy(day_budget=20.0, max_model="admins", channels=["C1", "C2"], user_limits={"U1": 10},
                 retention_days=30, web=False, per_request=3)
    team = Policy(day_budget=50.0, month_budget=100.0, max_model="everyone", channels=["C2", "C3"],
                  user_limits={"U1": 50, "U2": 5}, retention_days=90, dms=False, per_request=10)
    rules = team.resolve(LIMITS, org)
    assert rules.day_budget == 20.0 and rules.month_budget == 100.0       # the tighter of each
    assert rules.max_model == "admins" and rules.channels == ("C2",) and rules.dms is False
    assert rules.daily_images("U1") == 10 and rules.daily_images("U2") == 5 and rules.daily_images("U3") is None
    assert rules.retention_days == 30 and rules.web is False and rules.per_request == 3
    # a workspace that turns a budget off still has the organisation's
    assert Policy(day_budget=None).resolve(LIMITS, org).day_budget == 20.0
    # off Grid (no organisation policy) a workspace's own policy is all there is
    assert team.resolve(LIMITS).day_budget == 50.0 and team.resolve(LIMITS).max_model == "everyone"
