"""Policy folders as a repository: loading one (every problem at once), finding one by id
or by the session it applies to, its versions in Git, and its ``tests.yaml`` runner."""
