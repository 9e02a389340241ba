import sys

from stack.localstack import main

sys.exit(main())
