from callcenter_common.migrations import run_alembic_env
from recording.config import RecordingSettings
from recording.models import Base

run_alembic_env(Base.metadata, lambda: RecordingSettings().database_url)
