"""The metadata a Concourse build hands a put, as environment variables
(https://concourse-ci.org/implementing-resource-types.html#resource-metadata)."""

BUILD_ENV = {
    "BUILD_ID": "12345678",
    "BUILD_NAME": "42",
    "BUILD_JOB_NAME": "build",
    "BUILD_PIPELINE_NAME": "app",
    "BUILD_TEAM_NAME": "main",
    "ATC_EXTERNAL_URL": "https://ci.example.org",
    "BUILD_URL": "https://ci.example.org/teams/main/pipelines/app/jobs/build/builds/42",
}
