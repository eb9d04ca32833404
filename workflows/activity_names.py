"""Activity type names, shared by the workflow and the activity implementations."""

from enum import StrEnum


class ActivityName(StrEnum):
    VALIDATE = "validate_deployment"
    CREATE_RECORD = "create_bot_record"
    DEPLOY = "deploy_to_platform"
    HEALTH_CHECK = "run_health_check"
    FINISH = "finish_deployment"
    STOP_RELEASE = "stop_new_release"
    RESTORE_COMMANDS = "restore_command_snapshot"
    MARK_ROLLED_BACK = "mark_release_rolled_back"
    RECORD_OUTCOME = "record_outcome"
