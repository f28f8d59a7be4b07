"""The demo tenant ``make run`` seeds: tenant "Demo", agent ``agent@demo`` / ``demo``, and the
WhatsApp number ``test-phone-id`` with no app secret (so an unsigned curl works)."""

from __future__ import annotations

import logging

from desk.auth import issue_token
from storage import Conflict, Storage, User
from zapline.config import Settings

log = logging.getLogger("zapline")

DEMO_PHONE_NUMBER_ID = "test-phone-id"
DEMO_EMAIL = "agent@demo"
DEMO_PASSWORD = "demo"
DEMO_VERIFY_TOKEN = "demo-verify-token"


async def seed_demo(storage: Storage, settings: Settings) -> tuple[User, str]:
    """Create the demo records if missing (idempotent); return the agent and a 12 h token."""
    account = await storage.get_account(DEMO_PHONE_NUMBER_ID)
    if account is None:
        tenant = await storage.create_tenant("Demo")
        account = await storage.add_account(
            tenant.id, DEMO_PHONE_NUMBER_ID, verify_token=DEMO_VERIFY_TOKEN
        )
        log.info("seeded demo tenant %s with number %s", tenant.id, DEMO_PHONE_NUMBER_ID)
    try:
        user = await storage.create_user(
            account.tenant_id, DEMO_EMAIL, DEMO_PASSWORD, role="agent", name="Demo Agent"
        )
    except Conflict:
        found = await storage.authenticate(DEMO_EMAIL, DEMO_PASSWORD)
        if found is None:
            raise RuntimeError(
                f"{DEMO_EMAIL} exists with another password; remove it or the database"
            ) from None
        user = found
    token = issue_token(
        settings.jwt_secret,
        user_id=user.id,
        tenant_id=user.tenant_id,
        role=user.role,
        ttl=12 * 3600,
    )
    return user, token


def demo_instructions(settings: Settings, token: str) -> str:
    """What ``make run`` prints: the token and the commands to try the desk."""
    api = f"http://127.0.0.1:{settings.port}"
    return f"""
Demo ready. Open the console: {api}/  and sign in as {DEMO_EMAIL} / {DEMO_PASSWORD}
(post the webhook below and watch the card arrive). Or, in another terminal:
  . .venv/bin/activate
  zapline listen --url {settings.socket_url()} --token {token}
and post a WhatsApp webhook:
  curl -s -X POST {api}/webhooks/whatsapp -H 'Content-Type: application/json' -d '{{"object":"whatsapp_business_account","entry":[{{"id":"WABA_ID","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550000000","phone_number_id":"{DEMO_PHONE_NUMBER_ID}"}},"contacts":[{{"profile":{{"name":"Test User"}},"wa_id":"5511999999999"}}],"messages":[{{"from":"5511999999999","id":"wamid.TEST123","timestamp":"1700000000","type":"text","text":{{"body":"Hello from WhatsApp!"}}}}]}},"field":"messages"}}]}}]}}'
Log in as {DEMO_EMAIL} / {DEMO_PASSWORD}:  curl -s -X POST {api}/api/auth/login -d '{{"email":"{DEMO_EMAIL}","password":"{DEMO_PASSWORD}"}}'
"""
