# Sleeps for a minute: burns no instructions, so fuel alone would never stop it (classic).
# expect: fail
import time

time.sleep(60)
print("woke up")
