from callcenter_common.migrations import run_alembic_env
from messaging.config import MessagingSettings
from messaging.models import Base

run_alembic_env(Base.metadata, lambda: MessagingSettings().database_url)
