import subprocess
ref = subprocess.check_output(['git', 'show', '-s', '--format=%H']).decode()
open('version_info.py', 'w').write(f'REF = {ref!r}\n')
