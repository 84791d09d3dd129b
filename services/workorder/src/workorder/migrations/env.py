from callcenter_common.migrations import run_alembic_env
from workorder.config import WorkorderSettings
from workorder.models import Base

run_alembic_env(Base.metadata, lambda: WorkorderSettings().database_url)
