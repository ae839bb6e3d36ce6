print("hello!")
