"""The process shell shared by hil-plant, hil-controller and the rig emulator: structured
logs, the process lifecycle (run_process, stop flags, exit codes, report files).
"""
