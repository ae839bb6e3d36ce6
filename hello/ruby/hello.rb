puts "hello!"
